"""LoRA training memory: peak memory of one prior-preservation step at the paper's batch 16 vs batch 1,
with and without gradient checkpointing (`semantic.lora_gradient_checkpointing`).

Each configuration runs in its own process (peak RSS is per process): the base pipeline loads, the LoRA
is added as `generation.semantic.lora` adds it, then `--steps` optimizer steps of the instance and
class losses (two UNet passes of `--batch` images each, as `train_lora`'s micro step) on random latents.

    python benchmarks/lora_memory.py                       # CPU, tiny random-weight SD, 256 px
    python benchmarks/lora_memory.py --device cuda --dtype fp16 \\
        --model stabilityai/stable-diffusion-2-1-base --revision <commit>

Prints one line per configuration and, last, one JSON object of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="Hub id or folder (default: a tiny model built from configs)")
    p.add_argument("--revision", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--resolution", type=int, default=256, help="the paper's LoRA resolution (default 256)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--worker", nargs=2, metavar=("BATCH", "CHECKPOINTING"), help=argparse.SUPPRESS)
    return p.parse_args()


def worker(args, model: str, batch: int, checkpointing: bool) -> dict:
    """One configuration in this process: its peak RSS (and CUDA peak) and seconds per step."""
    import resource

    import torch

    from builder.core.config import SemanticConfig
    from generation.semantic import trainer as T
    from generation.semantic.lora import _add_lora
    from generation.semantic.textual_inversion import encode_prompts

    torch.set_num_threads(1)
    cfg = SemanticConfig(model_id=model, revision=args.revision)
    dtype = T.weight_dtype({"fp32": "no"}.get(args.dtype, args.dtype))
    pipe = T.load_pipeline(cfg)
    unet, vae, te = pipe.unet, pipe.vae, pipe.text_encoder
    for m in (unet, vae, te):
        m.requires_grad_(False)
        T.place(m, args.device, dtype)
    params = _add_lora(unet, 8, 0)
    if checkpointing:
        unet.enable_gradient_checkpointing()
    side = args.resolution // 8
    g = torch.Generator().manual_seed(0)
    bank = T.LatentBank([None] * batch, torch.randn(batch, 4, side, side, generator=g),
                        torch.full((batch, 4, side, side), 0.1))
    hidden = encode_prompts(pipe.tokenizer, te, ["an image of skin"] * batch, args.device)
    opt = torch.optim.AdamW(params, lr=1e-4)
    sched, idx = T.training_scheduler(pipe), list(range(batch))
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = sum(T.diffusion_loss(unet, sched, vae.config.scaling_factor, bank, idx, hidden, g, dtype).mean()
                   for _ in range(2))  # instance + class (prior preservation) passes
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    out = {"batch": batch, "gradient_checkpointing": checkpointing,
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "s_per_step": round((time.perf_counter() - t0) / args.steps, 2)}
    if args.device.startswith("cuda"):
        out["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def main() -> None:
    args = parse()
    if args.worker:
        print(json.dumps(worker(args, args.model, int(args.worker[0]), args.worker[1] == "1")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from generation.tiny import save_tiny

            model = str(save_tiny("text2img", Path(tmp) / "tiny"))
        rows = []
        for batch in args.batches:
            for ckpt in ("0", "1"):
                cmd = [sys.executable, __file__, "--model", model, "--device", args.device, "--dtype", args.dtype,
                       "--resolution", str(args.resolution), "--steps", str(args.steps), "--worker", str(batch), ckpt]
                if args.revision:
                    cmd += ["--revision", args.revision]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    print(json.dumps({"model": args.model or "tiny", "device": args.device, "dtype": args.dtype,
                      "resolution": args.resolution, "rows": rows}))


if __name__ == "__main__":
    main()
