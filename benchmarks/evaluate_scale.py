"""`builder evaluate` at several version sizes: wall time and peak RSS of the whole evaluation.

Run: python benchmarks/evaluate_scale.py [--rows 1000 10000] [--version 1.1]

One demo build (36 real photos); each size is a copy of it whose synthetic rows are repeated (new
sample ids, the same images) until it holds about that many rows: a real build of 10k rows takes tens of
minutes on a shared 2-core machine, and the evaluation's cost depends on the row count, not on whether
images repeat (every row is read, decoded and passed through the networks). Then one evaluation in a
subprocess with tiny random-weight networks (a 32 px DINOv2-architecture feature model and classifier,
a tiny random CNN in place of Inception-v3, the classifier protocol off): what is measured is the
pipeline's own cost (reading rows, decoding, feature passes, the statistics and their bootstraps, the
augmentation sets, the card), not a real network's. Peak RSS is sampled every 0.1 s (psutil); the slope
column is the RSS a row adds between consecutive sizes. `--in-memory-mib 0` keeps every feature set in its
cache file (builder.published.evaluate.featurefile), as a large version with a real network's 768- or
2048-wide features would be: the tiny networks' 16-32-wide features alone stay in memory by default.

Each size is evaluated twice, side by side: as `builder evaluate` runs (`builder.core.heap` returns freed
memory to the system) and, as the baseline, with the allocators' defaults (`heap.ENABLED = False`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import peak_rss  # noqa: E402  (the build benchmark's sampler)

from builder.build.shards import ROW_GROUP_ROWS  # noqa: E402


def scaled_copy(built: Path, rows: int, dest: Path) -> int:
    """`built` (a version folder) with every shard's rows repeated to about `rows` synthetic rows in all."""
    import json
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(built, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    shards = [f for f in manifest["files"] if "config" in f]
    times = max(1, round(rows / sum(f["rows"] for f in shards)))
    for f in shards:
        t = pq.read_table(dest / f["path"])
        ids = t.column("sample_id").to_pylist()
        big = pa.concat_tables([t] * times)
        big = big.set_column(big.schema.get_field_index("sample_id"), "sample_id",
                             pa.array([f"{i}~{k}" for k in range(times) for i in ids]))
        pq.write_table(big, dest / f["path"], row_group_size=ROW_GROUP_ROWS)  # row groups as the build writes them
        f["rows"] = big.num_rows
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return sum(f["rows"] for f in shards)


def evaluate_once(folder: Path, model: Path, in_memory_mib: float | None, heap_on: bool) -> None:
    """The evaluation itself (run in a subprocess so its RSS is measured alone)."""
    import torch

    from builder.core import heap
    from builder.published.evaluate import featurefile

    heap.ENABLED = heap_on
    if in_memory_mib is not None:
        featurefile.IN_MEMORY_BYTES = int(in_memory_mib * 2 ** 20)

    from builder.published.evaluate.run import EvalSettings, run_evaluation
    from builder.published.evaluate.standard import Extractor

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)

        def forward(self, x):
            x = torch.nn.functional.interpolate(x.float(), size=(64, 64), mode="bilinear")
            return torch.relu(self.conv(x)).mean((2, 3))

    settings = EvalSettings(model=str(model), steps=20, batch_size=16, n_boot=100)
    run_evaluation(folder, settings, inception=Extractor("tiny random CNN (benchmark, not Inception-v3)",
                                                         {"net": "bench"}, Tiny()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1000, 10000], help="approximate rows per version")
    p.add_argument("--version", default="1.1")
    p.add_argument("--in-memory-mib", type=float, default=None,
                   help="feature sets up to this size are kept in memory (default: the package's setting)")
    p.add_argument("--build-out", type=Path, default=None,
                   help="reuse a demo build (the --out folder of `build --version <V>`) instead of building one")
    p.add_argument("--modes", nargs="+", choices=["returned", "defaults"], default=["returned", "defaults"],
                   help="returned: freed memory handed back (builder.core.heap, as builder evaluate runs); "
                        "defaults: the allocators' defaults (the baseline)")
    p.add_argument("--evaluate", nargs=3, metavar=("FOLDER", "MODEL", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.evaluate:
        return evaluate_once(Path(args.evaluate[0]), Path(args.evaluate[1]), args.in_memory_mib,
                             args.evaluate[2] == "returned")
    import shutil

    from generation.tiny import save_tiny_vision_backbone

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CGDDI_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    runs = []
    with tempfile.TemporaryDirectory(prefix="cgddi-evalscale-") as tmp:
        model = save_tiny_vision_backbone(Path(tmp) / "tinyvit")
        demo = args.build_out or Path(tmp) / "demo"
        if args.build_out is None:
            subprocess.run([sys.executable, "-m", "builder", "-q", "build", "--version", args.version, "--out",
                            str(demo)], env=env, cwd=ROOT, check=True, capture_output=True)
        for rows in args.rows:
            out = Path(tmp) / f"rows-{rows}"
            n = scaled_copy(demo / args.version, rows, out / args.version)
            folder = out / args.version
            for mode in args.modes:
                shutil.rmtree(out / ".work", ignore_errors=True)  # a fresh evaluation cache per run
                shutil.copytree(demo / ".work" / args.version, out / ".work" / args.version,  # real photos, splits
                                ignore=shutil.ignore_patterns("evaluation"))
                extra = [] if args.in_memory_mib is None else ["--in-memory-mib", str(args.in_memory_mib)]
                proc = subprocess.Popen([sys.executable, __file__, "--evaluate", str(folder), str(model), mode, *extra],
                                        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                seconds, rss = peak_rss(proc)
                log = proc.stdout.read()
                if proc.returncode:
                    raise SystemExit(f"evaluation of {n} rows failed:\n{log[-3000:]}")
                runs.append({"mode": mode, "rows": n, "seconds": round(seconds, 1), "peak_rss_mib": round(rss)})
                print(json.dumps(runs[-1]), flush=True)
            shutil.rmtree(out)  # one size on disk at a time
    print(f"evaluate, tiny networks, {os.cpu_count()} cores (shared machine: wall times include other load)")
    print(f"{'mode':>9} {'rows':>7} {'seconds':>8} {'s per 1k rows':>13} {'peak RSS MiB':>12} {'KiB per row':>11}")
    slopes = {}
    for mode in args.modes:
        mine = [r for r in runs if r["mode"] == mode]
        slopes[mode] = [round(1024 * (b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["rows"] - a["rows"]), 2)
                        for a, b in zip(mine, mine[1:])]
        for r, k in zip(mine, [None] + slopes[mode]):
            print(f"{mode:>9} {r['rows']:>7} {r['seconds']:>8.1f} {1000 * r['seconds'] / r['rows']:>13.1f} "
                  f"{r['peak_rss_mib']:>12} {'' if k is None else k:>11}")
    print("KiB per row: the peak RSS each added row costs between consecutive sizes")
    print(json.dumps({"runs": runs, "rss_kib_per_row": slopes, "in_memory_mib": args.in_memory_mib}))


if __name__ == "__main__":
    main()
