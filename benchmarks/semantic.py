"""Semantic sampling throughput: batched vs one-by-one pipeline calls, same seeds, same device, same run.

Default: a tiny random-weight SD pipeline on CPU (no weights, no network). On a GPU machine:
`python benchmarks/semantic.py --model stabilityai/stable-diffusion-2-1-base --device cuda
--resolution 512 --steps 50 --images 32 --batch 8 --dtype fp16`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from builder.core.config import SemanticConfig  # noqa: E402
from builder.core.schema import SKIN_TONES, sample_seed  # noqa: E402


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="Hub id or folder (default: a tiny model built from configs)")
    p.add_argument("--revision", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads (default 1: on a shared 2-core machine more threads oversubscribe "
                        "and time noise, not batching)")
    return p.parse_args()


def timed(pipe, prompts, seeds, cfg, batch: int, device: str) -> tuple[float, list[np.ndarray]]:
    import torch

    from generation.semantic.sampling import generate_batch

    out = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(0, len(prompts), batch):
        out += generate_batch(pipe, prompts[k:k + batch], seeds[k:k + batch], cfg)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def main() -> None:
    import torch

    from generation.semantic.trainer import load_pipeline, weight_dtype

    args = parse()
    torch.set_num_threads(args.threads)
    model = args.model or str(_tiny())
    cfg = dataclasses.replace(SemanticConfig(), model_id=model, revision=args.revision,
                              sample_steps=args.steps, sample_resolution=args.resolution, sample_batch=args.batch)
    dtype = None if args.dtype == "fp32" else weight_dtype(args.dtype)
    pipe = load_pipeline(cfg, dtype).to(args.device)
    prompts = [f"An image of melanoma on the skin of a {SKIN_TONES[i % 3]}-skinned individual"
               for i in range(args.images)]
    seeds = [sample_seed(f"bench-{i}") for i in range(args.images)]
    timed(pipe, prompts[:args.batch], seeds[:args.batch], cfg, args.batch, args.device)  # warm-up
    t_one, one = timed(pipe, prompts, seeds, cfg, 1, args.device)
    t_bat, bat = timed(pipe, prompts, seeds, cfg, args.batch, args.device)
    diff = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(one, bat))
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    rows = [("one-by-one (batch 1)", t_one), (f"batched (batch {args.batch})", t_bat)]
    print(f"model={'tiny (random weights)' if args.model is None else model} device={device} dtype={args.dtype} "
          f"{args.resolution}px {args.steps} steps, {args.images} images")
    print(f"{'mode':<24}{'seconds':>10}{'samples/s':>12}")
    for name, t in rows:
        print(f"{name:<24}{t:>10.2f}{args.images / t:>12.2f}")
    print(f"speed-up {t_one / t_bat:.2f}x; max pixel difference batched vs one-by-one: {diff}")
    print(json.dumps({"model": "tiny" if args.model is None else model, "device": device, "dtype": args.dtype,
                      "resolution": args.resolution, "steps": args.steps, "images": args.images,
                      "batch": args.batch, "samples_per_s_one_by_one": round(args.images / t_one, 3),
                      "samples_per_s_batched": round(args.images / t_bat, 3),
                      "images_per_s": round(args.images / t_bat, 3),
                      "speedup": round(t_one / t_bat, 3), "max_pixel_diff": diff}))


def _tiny() -> Path:
    from generation.tiny import save_tiny

    return save_tiny("text2img", Path(tempfile.mkdtemp(prefix="cgddi-bench-")) / "tiny")


if __name__ == "__main__":
    main()
