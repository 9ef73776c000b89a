"""`builder evaluate` at two version sizes: wall time and peak RSS of the whole evaluation.

Run: python benchmarks/evaluate_scale.py [--rows 1000 10000] [--version 1.1]

Each size is a fresh demo build with only `lesion_map.budget` raised, then one evaluation in a
subprocess with tiny random-weight networks (a 32 px DINOv2-architecture feature model and classifier,
a tiny random CNN in place of Inception-v3, the classifier protocol off): what is measured is the
pipeline's own cost (reading rows, decoding, feature passes, the statistics and their bootstraps, the
augmentation sets, the card), not a real network's. Peak RSS is sampled every 0.1 s (psutil).
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

from scale import build, peak_rss  # noqa: E402  (the build benchmark's helpers)


def evaluate_once(folder: Path, model: Path) -> None:
    """The evaluation itself (run in a subprocess so its RSS is measured alone)."""
    import torch

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
    p.add_argument("--evaluate", nargs=2, metavar=("FOLDER", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.evaluate:
        return evaluate_once(Path(args.evaluate[0]), Path(args.evaluate[1]))
    from generation.tiny import save_tiny_vision_backbone

    env = {**os.environ, "PYTHONPATH": str(ROOT), "CGDDI_PROGRESS": "0", "HF_HUB_OFFLINE": "1"}
    runs = []
    with tempfile.TemporaryDirectory(prefix="cgddi-evalscale-") as tmp:
        model = save_tiny_vision_backbone(Path(tmp) / "tinyvit")
        for rows in args.rows:
            built = build(args.version, rows - 36, 2, Path(tmp))  # 36 healthy rows; the rest lesion maps
            folder = Path(tmp) / f"out-{rows - 36}" / args.version
            proc = subprocess.Popen([sys.executable, __file__, "--evaluate", str(folder), str(model)], env=env,
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            seconds, rss = peak_rss(proc)
            out = proc.stdout.read()
            if proc.returncode:
                raise SystemExit(f"evaluation of {built['rows']} rows failed:\n{out[-3000:]}")
            runs.append({"rows": built["rows"], "seconds": round(seconds, 1), "peak_rss_mib": round(rss)})
    print(f"evaluate, tiny networks, {os.cpu_count()} cores (shared machine: wall times include other load)")
    for r in runs:
        print(f"{r['rows']:>7} rows  {r['seconds']:>8.1f} s  {1000 * r['seconds'] / r['rows']:>6.1f} s per 1k rows  "
              f"peak RSS {r['peak_rss_mib']} MiB")
    print(json.dumps({"runs": runs}))


if __name__ == "__main__":
    main()
