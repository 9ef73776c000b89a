"""The paper's GPU work at the models' real sizes, through the toolkit's own stage code, beside the paper's L4 times.

Every model is built at its published size from its published configuration with random weights
(`benchmarks/gpu_models.py`; nothing is downloaded), written to a model folder one component at a time,
and loaded by the toolkit's own loader. Paths (`--paths`):

- healthy:  Kandinsky 2.2 inpainting (prior + decoder), `generation.healthy.kandinsky.KandinskyBackend.generate`
- inpaint:  SD 1.5 inpainting, `generation.healthy.backends.DiffusersBackend.generate`
- ti:       one optimiser step of `generation.semantic.textual_inversion.train_textual_inversion` (batch 4 x 4
            accumulation) on Stable Diffusion 2.1-base
- lora:     one optimiser step of `generation.semantic.lora.train_lora` (rank 8, batch 16 + 16 prior-preservation
            class images), the TI token loaded first
- semantic: image-to-image with that TI token and LoRA attached (`generation.semantic.img2img`), strength 0.725,
            guidance 8.75 (the paper's settings), `--steps` (the paper: 100)
- sam3:     SAM 3 (transformers' Sam3Config defaults) prompted with text, `curation.source.automasks.sam3.Sam3Backend`

Each model family is built and each path is run in its own process (peak memory is per process: CPU peak RSS,
or CUDA peak allocated per batch); the folder is deleted when its paths are done. Prints a table (images/s or
steps/s per batch size, peak memory, dtype, the paper's L4 time beside it) and, last, one JSON object.

    nice -n 10 python benchmarks/gpu.py --device cpu --resolution 128 --steps 2      # proves every path
    python benchmarks/gpu.py --device cuda --batch-sizes 1 4 8                       # the paper's settings

`--size tiny` runs the same code on test-size models (the fast test). The paper (S9, NVIDIA L4): healthy
2.5 GPU-hours for 334 images (27 s/image), semantic sampling 250 GPU-days for 185,400 images (116 s/image),
textual inversion 45 GPU-hours and LoRA 30 GPU-hours; per step below assumes 65 disease models (the released
repositories) x 500 TI / 750 LoRA steps.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PATHS = ("healthy", "inpaint", "ti", "lora", "semantic", "sam3")
FAMILY = {"healthy": "kandinsky22", "inpaint": "sd_inpaint", "ti": "sd21", "lora": "sd21", "semantic": "sd21",
          "sam3": "sam3"}
# the paper's resolution and steps per path (healthy: healthy.crop_size / healthy.steps of config 1.1)
PAPER_SETTINGS = {"healthy": (512, 30), "inpaint": (512, 30), "ti": (512, 1), "lora": (256, 1),
                  "semantic": (512, 100), "sam3": (1008, 1)}
PAPER = {"healthy": ("s/image", 2.5 * 3600 / 334), "semantic": ("s/image", 250 * 86400 / 185_400),
         "ti": ("s/step", 45 * 3600 / (65 * 500)), "lora": ("s/step", 30 * 3600 / (65 * 750))}
DISEASE = "melanoma"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                   help="auto: fp16 on CUDA (as the paper ran); fp32 on CPU, bf16 for Kandinsky 2.2 (19 GB in fp32)")
    p.add_argument("--resolution", type=int, default=None,
                   help="px for every diffusion path (default: the paper's, 512; LoRA 256); SAM 3 keeps 1008")
    p.add_argument("--steps", type=int, default=None,
                   help="inference steps for every sampling path, prior included (default: the paper's / config 1.1's)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS,
                   help="what to run (semantic brings ti and lora: it samples with the adapters they write)")
    p.add_argument("--size", default="real", choices=["real", "tiny"])
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--keep", type=Path, default=None, help="write the model folders here and keep them")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if "semantic" in args.paths:  # it samples with the adapters the two training paths write
        args.paths = [x for x in PATHS if x in args.paths or x in ("ti", "lora")]
    return args


def dtype_for(args, family: str) -> str:
    if args.dtype != "auto":
        return {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[args.dtype]
    if args.device == "cuda":
        return "float16"
    return "bfloat16" if family == "kandinsky22" and args.size == "real" else "float32"


def settings(args, path: str) -> tuple[int, int]:
    res, steps = PAPER_SETTINGS[path]
    if args.size == "tiny" and path == "sam3":
        from generation.tiny import TINY_SAM3_SIDE

        res = TINY_SAM3_SIDE
    if args.resolution and path != "sam3":
        res = args.resolution
    if args.steps and path in ("healthy", "inpaint", "semantic"):
        steps = args.steps
    return res, steps


def peak_mib(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def timed(fn, device: str) -> float:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def skin(side: int, seed: int):
    """A skin-coloured photo with a darker disc (the lesion) and its label map (4 skin, 1 lesion)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rgb = np.clip(rng.normal((190, 140, 115), 12, (side, side, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:side, :side]
    lesion = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 6) ** 2
    rgb[lesion] = (rgb[lesion] * 0.55).astype(np.uint8)
    return rgb, np.where(lesion, 1, 4).astype(np.uint8)


def per_batch(args, run_batch, path: str, unit_per_item: int = 1) -> list[dict]:
    """Time `run_batch(n)` for each batch size (a warm-up call first on CUDA): one row each."""
    rows = []
    if args.device == "cuda":
        run_batch(min(args.batch_sizes))
    for b in args.batch_sizes:
        reset_peak(args.device)
        t = timed(lambda: run_batch(b), args.device)
        rows.append({"path": path, "batch": b, "rate": round(b * unit_per_item / t, 4), "unit": "images/s",
                     "seconds": round(t, 2), "peak_mib": peak_mib(args.device)})
    return rows


def run_healthy(args, folder: Path, path: str, dtype: str) -> list[dict]:
    import dataclasses

    from builder.core.config import load_config
    from generation.healthy.backends import DiffusersBackend, Job
    from generation.healthy.kandinsky import KandinskyBackend
    from generation.healthy.region import inpaint_region

    res, steps = settings(args, path)
    base = load_config("1.1").healthy
    cfg = dataclasses.replace(base, backend="kandinsky22" if path == "healthy" else "diffusers",
                              model_id=str(folder), revision=None, prior_model_id=None, prior_revision=None,
                              crop_size=res, steps=steps, prior_steps=args.steps or base.prior_steps, dtype=dtype)
    backend = (KandinskyBackend if path == "healthy" else DiffusersBackend)(cfg, args.device)
    photos = [skin(res + res // 2, k) for k in range(max(args.batch_sizes))]
    jobs = []
    for k, (rgb, lm) in enumerate(photos):
        region = inpaint_region(lm, include_marker=True, dilate_px=base.dilate_px, feather_px=base.feather_px,
                                rim_px=base.rim_px, rgb=rgb)
        jobs.append(Job(rgb, region, backend.prompt_for(("light", "medium", "dark")[k % 3]), k))

    def batch(n: int):
        out = backend.generate(jobs[:n])
        assert len(out) == n and all(o is None or o.dtype.name == "uint8" for o in out)

    return per_batch(args, batch, path)


def run_sam3(args, folder: Path, path: str, dtype: str) -> list[dict]:
    import dataclasses

    from builder.core.config import MasksConfig
    from curation.source.automasks.sam3 import Sam3Backend

    cfg = dataclasses.replace(MasksConfig(), auto=True, backend="sam3", model_id=str(folder), revision=None)
    backend = Sam3Backend(cfg, args.device)
    photos = [skin(768, k)[0] for k in range(max(args.batch_sizes))]

    def batch(n: int):  # the backend segments one photo at a time: a "batch" is n photos in a row
        for rgb in photos[:n]:
            out = backend.segment(rgb)
            assert out.label_map.shape == rgb.shape[:2]

    return per_batch(args, batch, path)


def training_images(kind: str, n: int) -> list:
    import hashlib

    from generation.semantic.training_set import TrainingImage

    tones = ("light", "medium", "dark")
    return [TrainingImage(f"{kind}-{k}", (f"bench:{kind}-{k}",) if kind != "class" else (), tones[k % 3],
                          DISEASE if kind != "class" else "healthy", kind != "class",
                          hashlib.sha256(f"{kind}-{k}".encode()).hexdigest()) for k in range(n)]


def read_rgb(im):
    return skin(320, int(im.sample_id.rsplit("-", 1)[1]))[0]


class StepRate:
    """The training loop's own steps/s (its log line), read from `generation.semantic.trainer`'s logger."""

    def __enter__(self):
        import logging

        self.rates, self.logger = [], logging.getLogger("generation.semantic.trainer")
        handler = logging.Handler()
        handler.emit = lambda r: self.rates.append(r.args[-1]) if str(r.msg).startswith("%s step") else None
        self.handler, self.level = handler, self.logger.level
        self.logger.addHandler(handler)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self.level)


def semantic_config(args, folder: Path, dtype: str):
    from builder.core.config import SemanticConfig

    res_ti, _ = settings(args, "ti")
    res_lora, _ = settings(args, "lora")
    res_s, steps = settings(args, "semantic")
    precision = {"float32": "no", "float16": "fp16", "bfloat16": "bf16"}[dtype]
    return SemanticConfig(model_id=str(folder), revision=None, mixed_precision=precision, ti_steps=1, ti_batch=4,
                          ti_grad_accum=4, ti_resolution=res_ti, lora_steps=1, lora_batch=16, lora_grad_accum=1,
                          lora_rank=8, prior_weight=1.0, lora_resolution=res_lora, checkpoint_every=1000,
                          sampling="img2img", strength=0.725, guidance=8.75, sample_steps=steps,
                          sample_resolution=res_s, negative_prompt="")


def run_training(args, folder: Path, path: str, dtype: str, work: Path) -> list[dict]:
    from generation.semantic.lora import train_lora
    from generation.semantic.textual_inversion import train_textual_inversion

    cfg = semantic_config(args, folder, dtype)
    reset_peak(args.device)
    with StepRate() as rate:
        t0 = time.perf_counter()
        if path == "ti":
            manifest, _ = train_textual_inversion(training_images("instance", 6), read_rgb, DISEASE, cfg,
                                                  work / "ti", device=args.device)
            batch = f"{cfg.ti_batch}x{cfg.ti_grad_accum}"
        else:
            manifest, _ = train_lora(training_images("instance", 6), read_rgb, training_images("class", 6), read_rgb,
                                     DISEASE, work / "ti" / "learned_embeds.safetensors", cfg, work / "lora",
                                     device=args.device)
            batch = f"{cfg.lora_batch}+{cfg.lora_batch}"
        total = time.perf_counter() - t0
    assert manifest["adapter"]["sha256"] and len(rate.rates) == 1, (manifest, rate.rates)
    return [{"path": path, "batch": batch, "rate": round(rate.rates[0], 4), "unit": "steps/s",
             "seconds": round(total, 2), "peak_mib": peak_mib(args.device)}]


def run_semantic(args, folder: Path, path: str, dtype: str, work: Path) -> list[dict]:
    import torch

    from builder.core.schema import sample_seed
    from generation.semantic import trainer as T
    from generation.semantic.img2img import generate_img2img_batch, img2img_pipeline, start_image
    from generation.semantic.sampling import _load_lora
    from generation.semantic.training_set import prompt_for

    cfg = semantic_config(args, folder, dtype)
    pipe = T.load_pipeline(cfg, getattr(torch, dtype)).to(args.device)
    pipe.load_textual_inversion(str(work / "ti" / "learned_embeds.safetensors"))
    _load_lora(pipe, work / "lora" / "pytorch_lora_weights.safetensors")
    img2img = img2img_pipeline(pipe)
    n = max(args.batch_sizes)
    tones = [("light", "medium", "dark")[k % 3] for k in range(n)]
    prompts = [prompt_for(DISEASE, t) for t in tones]
    starts = [start_image(skin(cfg.sample_resolution + 64, k)[0], cfg.sample_resolution) for k in range(n)]
    seeds = [sample_seed(f"bench-{k}") for k in range(n)]

    def batch(b: int):
        out = generate_img2img_batch(img2img, prompts[:b], starts[:b], seeds[:b], cfg)
        assert len(out) == b

    return per_batch(args, batch, path)


def worker(args) -> dict:
    import torch

    from benchmarks import gpu_models as M

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker[0] == "build":
        family, folder = args.worker[1], Path(args.worker[2])
        table = (M.FAMILIES if args.size == "real" else M.TINY)[family]
        counts = M.save_family(table, folder, dtype_for(args, family))
        if args.size == "real":
            M.check_sizes(family, counts)
        return {"family": family, "params": counts}
    path, folder, work = args.worker[1], Path(args.worker[2]), Path(args.worker[3])
    dtype = dtype_for(args, FAMILY[path])
    if path in ("healthy", "inpaint"):
        rows = run_healthy(args, folder, path, dtype)
    elif path == "sam3":
        rows = run_sam3(args, folder, path, dtype)
    elif path in ("ti", "lora"):
        rows = run_training(args, folder, path, dtype, work)
    else:
        rows = run_semantic(args, folder, path, dtype, work)
    res, steps = settings(args, path)
    return {"rows": [{**r, "dtype": dtype, "resolution": res, "steps": steps} for r in rows]}


def call(args, *worker_args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--device", args.device, "--dtype", args.dtype,
           "--size", args.size, "--batch-sizes", *map(str, args.batch_sizes), "--paths", *args.paths,
           "--worker", *worker_args]
    for flag, value in (("--resolution", args.resolution), ("--steps", args.steps), ("--threads", args.threads)):
        if value:
            cmd += [flag, str(value)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(f"worker {worker_args[:2]} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(args, root: Path) -> tuple[list[dict], dict]:
    from builder.core.progress import progress

    rows, params = [], {}
    families = list(dict.fromkeys(FAMILY[p] for p in args.paths))
    for family in progress(families, desc="gpu benchmark", unit="model"):
        folder, work = root / family, root / "adapters"
        if not (folder / "model_index.json").is_file() and not (folder / "config.json").is_file():
            params[family] = call(args, "build", family, str(folder))["params"]
        for path in (p for p in args.paths if FAMILY[p] == family):
            rows += [{**r, "family": family} for r in call(args, "run", path, str(folder), str(work))["rows"]]
        if args.keep is None:
            shutil.rmtree(folder)
    return rows, params


def report(args, rows: list[dict], params: dict) -> dict:
    from benchmarks.gpu_models import HUB_IDS

    import torch

    device = (torch.cuda.get_device_name(0) if args.device == "cuda"
              else f"cpu x{args.threads or torch.get_num_threads()} threads")
    print(f"device={device} size={args.size} (random weights; GPU figures need --device cuda)")
    for fam, counts in params.items():
        dtype = dtype_for(args, fam)
        weights = sum(counts.values()) * (4 if dtype == "float32" else 2) / 2**30
        print(f"  {fam:<12} {HUB_IDS[fam]}: " + ", ".join(f"{k} {v / 1e6:,.1f}M" for k, v in counts.items())
              + f" (weights {weights:.1f} GiB in {dtype})")
    head = f"{'path':<9}{'dtype':<10}{'px':>6}{'steps':>6}{'batch':>7}{'rate':>12} {'unit':<9}{'s/item':>9}"
    print(head + f"{'peak MiB':>10}  paper (L4)")
    out = {"device": device, "size": args.size}
    for r in rows:
        unit = r["unit"].split("/")[0]
        per = 1 / r["rate"] if r["rate"] else float("inf")
        paper = PAPER.get(r["path"])
        print(f"{r['path']:<9}{r['dtype']:<10}{r['resolution']:>6}{r['steps']:>6}{str(r['batch']):>7}"
              f"{r['rate']:>12.4f} {r['unit']:<9}{per:>9.2f}{r['peak_mib']:>10.0f}  "
              + (f"{paper[1]:.1f} {paper[0]}" if paper else "-"))
        key = f"{r['path']}_batch{r['batch']}".replace("+", "_plus_").replace("x", "_x_")
        out[f"{key}_{unit}_per_s"] = r["rate"]
        out[f"{key}_peak_mib"] = r["peak_mib"]
        out[f"{key}_dtype"] = r["dtype"]
    for fam, counts in params.items():
        out[f"{fam}_params"] = sum(counts.values())
        out[f"{fam}_weights_gib"] = round(sum(counts.values()) * (4 if dtype_for(args, fam) == "float32" else 2) / 2**30, 2)
    for path, (unit, seconds) in PAPER.items():
        out[f"paper_l4_{path}_{unit.replace('/', '_per_')}"] = round(seconds, 2)
    return out


def main(argv=None) -> dict:
    args = parse(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return {}
    root = args.keep or Path(tempfile.mkdtemp(prefix="cgddi-gpu-bench-"))
    try:
        rows, params = measure(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    out = report(args, rows, params)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
