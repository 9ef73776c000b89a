"""Shard writing: toolkit `write_shards` vs a raw byte copy of the same PNGs vs `datasets` to_parquet.

Run: `python benchmarks/shards.py [--n 250 1000] [--size 512]`. Each measurement runs in its own
process (peak RSS is that process's own VmHWM); throughput is PNG megabytes per second of
wall time. The `datasets` baseline is `Dataset.from_dict({...}).cast_column("image", Image())
.to_parquet(...)` on the same bytes. The last line is one JSON object of headline figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_store(root: Path, n: int, size: int, unique: int | None = None):
    """A stage store of `n` healthy records with distinct photo-like PNGs (skin-coloured gradients + noise)."""
    import numpy as np

    from builder.core.schema import Record
    from builder.core.store import StageStore, encode_png

    store = StageStore(root)
    pngs = []
    for k in range(min(unique or n, n)):
        rng = np.random.default_rng(k)
        yy, xx = np.mgrid[0:size, 0:size] / size
        base = np.stack([180 + 40 * np.sin(6 * xx + k), 140 + 30 * yy, 120 + 20 * np.cos(5 * yy * xx)], -1)
        pngs.append(encode_png(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)))
    records = []
    for i in range(n):
        sid = f"healthy-{i:016x}"
        path = store.put_image(sid, pngs[i % len(pngs)])
        records.append(Record(sample_id=sid, kind="healthy", skin_tone=("light", "medium", "dark")[i % 3],
                              malignant=False, disease="healthy", source_ids=[f"ddi:{i:06d}"], image_path=path,
                              split=("train", "train", "train", "validation", "test")[i % 5]))
    store.finish_shard("00000", records, [])
    return store


def child(mode: str, store_dir: Path, out: Path, shard_mb: float) -> dict:
    """One measurement in this process: seconds, PNG bytes handled, own peak RSS."""
    from builder.core.store import StageStore

    import pyarrow.parquet  # noqa: F401  imports are not part of writing
    if mode == "datasets":
        import datasets  # noqa: F401

    store = StageStore(store_dir)
    records = store.records()
    png_bytes = sum(os.path.getsize(store.root / r.image_path) for r in records)
    t0 = time.perf_counter()
    if mode == "copy":
        out.mkdir(parents=True)
        for r in records:
            shutil.copyfile(store.root / r.image_path, out / f"{r.sample_id}.png")
    elif mode == "toolkit":
        from builder.build.shards import write_shards

        write_shards(records, {"healthy": store}, out, "healthy", shard_mb)
    elif mode == "datasets":
        import datasets

        rows = [r.to_row(store.read_image_bytes(r)) for r in records]
        cols = {k: [row[k] for row in rows] for k in ("sample_id", "image", "split", "disease")}
        ds = datasets.Dataset.from_dict(cols).cast_column("image", datasets.Image())
        out.mkdir(parents=True)
        ds.to_parquet(str(out / "data.parquet"))
    seconds = time.perf_counter() - t0
    out_bytes = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"mode": mode, "rows": len(records), "seconds": seconds, "png_mb": png_bytes / 1e6,
            "out_mb": out_bytes / 1e6, "mb_s": png_bytes / 1e6 / seconds,
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    across fork+exec, so a child spawned by a big parent would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(mode: str, store_dir: Path, work: Path, shard_mb: float) -> dict:
    out = work / f"{mode}-{store_dir.name}"
    cmd = [sys.executable, __file__, "--child", mode, "--store", str(store_dir), "--out", str(out),
           "--shard-mb", str(shard_mb)]
    env = dict(os.environ, CGDDI_PROGRESS="0", HF_DATASETS_CACHE=str(work / "hf-cache"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs=2, default=[250, 1000], help="two dataset sizes (rows)")
    p.add_argument("--size", type=int, default=512, help="image side in pixels")
    p.add_argument("--shard-mb", type=float, default=100.0, help="target shard size for the toolkit writer")
    p.add_argument("--child", choices=["copy", "toolkit", "datasets"], help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.store, args.out, args.shard_mb)))
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="cgddi-bench-shards-") as tmp:
        work = Path(tmp)
        for n in args.n:
            store = make_store(work / f"store{n}", n, args.size)
            for mode in ("copy", "toolkit", "datasets"):
                results.append(measure(mode, store.root, work, args.shard_mb))
            shutil.rmtree(store.root)
    print(f"{'mode':<10}{'rows':>7}{'PNG MB':>9}{'out MB':>9}{'s':>8}{'MB/s':>9}{'peak RSS MB':>13}")
    for r in results:
        print(f"{r['mode']:<10}{r['rows']:>7}{r['png_mb']:>9.1f}{r['out_mb']:>9.1f}{r['seconds']:>8.2f}"
              f"{r['mb_s']:>9.1f}{r['peak_rss_mb']:>13.0f}")
    big = {r["mode"]: r for r in results if r["rows"] == args.n[1]}
    small = {r["mode"]: r for r in results if r["rows"] == args.n[0]}
    headline = {"rows_large": args.n[1], "rows_small": args.n[0],
                "toolkit_mb_per_s": round(big["toolkit"]["mb_s"], 1),
                "raw_copy_mb_per_s": round(big["copy"]["mb_s"], 1),
                "datasets_to_parquet_mb_per_s": round(big["datasets"]["mb_s"], 1),
                "speedup_vs_datasets": round(big["toolkit"]["mb_s"] / big["datasets"]["mb_s"], 2),
                "ratio_vs_raw_copy": round(big["toolkit"]["mb_s"] / big["copy"]["mb_s"], 3),
                "toolkit_peak_rss_mb_small": round(small["toolkit"]["peak_rss_mb"]),
                "toolkit_peak_rss_mb_large": round(big["toolkit"]["peak_rss_mb"]),
                "datasets_peak_rss_mb_small": round(small["datasets"]["peak_rss_mb"]),
                "datasets_peak_rss_mb_large": round(big["datasets"]["peak_rss_mb"])}
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
