"""Healthy-synthetics throughput: OpenCV backend on the real Fitzpatrick17k photos, diffusers batched vs one-at-a-time.

    python benchmarks/healthy.py                      # CPU: opencv + tiny random-weight pipeline
    python benchmarks/healthy.py --device cuda --model runwayml/stable-diffusion-inpainting \\
        --revision <commit> --crop-size 512 --steps 30 # a real SD inpainting model on a GPU

Prints a table (each figure beside its baseline, measured in the same run) and, as its last line,
one JSON object of headline figures.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CGDDI_PROGRESS", "0")

from builder.core.config import HealthyConfig  # noqa: E402
from builder.core.store import StageStore  # noqa: E402
from curation.source.ingest import ingest_source  # noqa: E402
from generation.healthy.stage import run_healthy  # noqa: E402
from generation.healthy.region import inpaint_region  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="inpainting model (default: a tiny random one)")
    p.add_argument("--revision", default=None)
    p.add_argument("--crop-size", type=int, default=None, help="default 64 (tiny) or 512")
    p.add_argument("--steps", type=int, default=None, help="default 2 (tiny) or 30")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--n-diffusers", type=int, default=16, help="photos for the diffusers runs (default 16)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return p.parse_args()


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_opencv(real: StageStore, tmp: Path) -> dict:
    """End to end through run_healthy (window crop, PNG encode) vs cv2.inpaint on the whole frame."""
    import cv2

    cfg = HealthyConfig()
    secs, summary = timed(lambda: run_healthy(real, StageStore(tmp / "opencv"), cfg))
    jobs = []
    for rec in real.records():
        lm = real.read_mask(rec.sample_id)
        region = inpaint_region(lm, include_marker=True, dilate_px=cfg.dilate_px, feather_px=cfg.feather_px)
        jobs.append((real.read_image(rec.sample_id), region.mask.astype("uint8") * 255))
    full, _ = timed(lambda: [cv2.inpaint(img, m, cfg.opencv_radius, cv2.INPAINT_TELEA) for img, m in jobs])
    return {"n": summary.done, "stage_s": secs, "fullframe_s": full}


def bench_diffusers(tmp: Path, args: argparse.Namespace) -> dict:
    """The same images batched (--batch-size) and one at a time; the pipeline is loaded once per run."""
    real = StageStore(tmp / "real-subset")
    ingest_source(args.data / "fitz17k_lesions", None, real, limit=args.n_diffusers)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = args.model
    if model is None:
        from generation.tiny import save_tiny

        model = str(save_tiny("inpaint", tmp / "tiny-inpaint"))
    cfg = HealthyConfig(backend="diffusers", model_id=model, revision=args.revision,
                        crop_size=args.crop_size or (512 if args.model else 64),
                        steps=args.steps or (30 if args.model else 2), dtype=args.dtype)
    # Warm-up (load, first-call kernels) on a separate output so neither timed run pays it.
    run_healthy(real, StageStore(tmp / "warm"), dataclasses.replace(cfg, seed=1), device=args.device,
                batch_size=args.batch_size)
    res = {"model": model if args.model else "tiny random-weight (generation/tiny.py)",
           "crop": cfg.crop_size, "steps": cfg.steps}
    for name, bs in (("batched", args.batch_size), ("single", 1)):
        secs, summary = timed(lambda: run_healthy(real, StageStore(tmp / name), cfg, device=args.device,
                                                  batch_size=bs))
        res[name] = (summary.done, secs)
    return res


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="cgddi-bench-healthy-") as d:
        tmp = Path(d)
        real = StageStore(tmp / "real")
        ingest_source(args.data / "fitz17k_lesions", None, real)
        ocv = bench_opencv(real, tmp)
        dif = bench_diffusers(tmp, args)
    n = ocv["n"]
    rows = [
        ("opencv run_healthy (crop, composite, PNG)", n, ocv["stage_s"]),
        ("  baseline: cv2.inpaint whole frame only", n, ocv["fullframe_s"]),
        (f"diffusers batch {args.batch_size} ({dif['crop']} px, {dif['steps']} steps)", *dif["batched"]),
        ("  baseline: diffusers one at a time", *dif["single"]),
    ]
    print(f"device: {args.device}; photos: Fitzpatrick17k with hand-drawn masks; model: {dif['model']}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'what':48s} {'images':>7s} {'seconds':>8s} {'img/s':>8s}")
    for what, k, s in rows:
        print(f"{what:48s} {k:7d} {s:8.2f} {k / s:8.2f}")
    print(json.dumps({
        "device": args.device, "images": n,
        "images_per_s": round(n / ocv["stage_s"], 2),  # the stage users run by default (opencv)
        "opencv_img_per_s": round(n / ocv["stage_s"], 2),
        "opencv_fullframe_img_per_s": round(n / ocv["fullframe_s"], 2),
        "diffusers_batched_img_per_s": round(dif["batched"][0] / dif["batched"][1], 2),
        "diffusers_single_img_per_s": round(dif["single"][0] / dif["single"][1], 2),
        "diffusers_speedup_batched_vs_single": round(dif["batched"][0] / dif["batched"][1]
                                                     / (dif["single"][0] / dif["single"][1]), 2),
        "diffusers_images": dif["batched"][0], "diffusers_batch_size": args.batch_size, "diffusers_crop": dif["crop"], "diffusers_steps": dif["steps"],
    }))


if __name__ == "__main__":
    main()
