"""What textual inversion and LoRA training share: model loading, cached latents, tone-balanced batches, the loop."""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from builder.core.backends import Backend
from builder.core.config import SemanticConfig
from builder.core.errors import ConfigError
from builder.core.models import PinnedModel, check_pinned, pin_model
from builder.core.progress import progress
from builder.core.store import decode_rgb
from generation.semantic.img2img import check_sampling, start_image
from generation.semantic.training_set import TrainingImage, read_manifest

log = logging.getLogger(__name__)
CHECKPOINTS = "checkpoints"


def check_config(cfg: SemanticConfig, device: str | None) -> None:
    """Bad settings fail before any model loads (house style: validate first)."""
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise ConfigError(f"semantic.mixed_precision={cfg.mixed_precision!r}; expected no, fp16 or bf16")
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: torch sees no CUDA device; use --device cpu "
                              "(with semantic.mixed_precision no or bf16)")
    if cfg.mixed_precision == "fp16" and _resolve_device(device) == "cpu":
        raise ConfigError("semantic.mixed_precision=fp16 needs a GPU; on CPU set it to 'no' (or 'bf16') "
                          "in the config, or pass --device cuda")
    for name in ("ti_steps", "lora_steps", "ti_batch", "lora_batch", "ti_grad_accum", "lora_grad_accum",
                 "lora_rank", "sample_steps", "sample_batch", "shard_size", "checkpoint_every",
                 "ti_resolution", "lora_resolution", "sample_resolution"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"semantic.{name}={getattr(cfg, name)!r} must be a positive integer")
    for name in ("ti_resolution", "lora_resolution", "sample_resolution"):
        if getattr(cfg, name) % 8:
            raise ConfigError(f"semantic.{name}={getattr(cfg, name)} must be a multiple of 8 (VAE stride)")
    check_sampling(cfg)
    DiffusersSampler.check(cfg)


def _resolve_device(device: str | None) -> str:
    if device:
        return device.split(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_accelerator(cfg: SemanticConfig, device: str | None, grad_accum: int):
    from accelerate import Accelerator

    return Accelerator(cpu=_resolve_device(device) == "cpu", mixed_precision=cfg.mixed_precision,
                       gradient_accumulation_steps=grad_accum)


def weight_dtype(mixed_precision: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(mixed_precision, torch.float32)


class DiffusersSampler(Backend):
    """The semantic stage's text-to-image model: a diffusers Stable Diffusion pipeline with per-disease
    textual-inversion tokens and LoRA adapters (trained here, loaded for sampling)."""

    kind, name = "sampling", "diffusers"
    settings = ("model_id", "revision")
    tags, prompted = ("diffusers",), True
    REVISION = "semantic.revision"

    @classmethod
    def check(cls, cfg: SemanticConfig) -> None:
        check_pinned(cfg.model_id, cfg.revision, setting=cls.REVISION)

    @classmethod
    def fingerprint(cls, cfg: SemanticConfig, **run) -> dict:
        return {"sample_batch": cfg.sample_batch}  # images per pipeline call: fixed batches, fixed pixels

    @classmethod
    def card_text(cls, cfg: SemanticConfig) -> str:
        return ("with textual-inversion tokens and LoRA adapters, prompts `An image of <disease-class> on the "
                "skin of a {tone}-skinned individual`")

    @classmethod
    def pin(cls, cfg: SemanticConfig) -> PinnedModel:
        return pin_model(cfg.model_id, cfg.revision, setting=cls.REVISION)


def load_pipeline(cfg: SemanticConfig, dtype=None, pinned: PinnedModel | None = None):
    """The base text-to-image pipeline at the config's pinned revision (a local folder is pinned by content)."""
    from diffusers import StableDiffusionPipeline

    pinned = pinned or DiffusersSampler.pin(cfg)
    pipe = StableDiffusionPipeline.from_pretrained(pinned.source, revision=pinned.load_revision, torch_dtype=dtype,
                                                   safety_checker=None, requires_safety_checker=False)
    if len(pipe.tokenizer) <= 2:  # offline, loads can return a useless tokenizer
        raise ConfigError(f"{cfg.model_id}: its tokenizer loaded empty; the model files are incomplete")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prepare_image(rgb: np.ndarray, resolution: int):
    """Shorter side to `resolution` (bicubic), centre crop, CHW float in [-1, 1]."""
    import torch

    arr = np.asarray(start_image(rgb, resolution), dtype=np.float32)
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1)


@dataclasses.dataclass
class LatentBank:
    """VAE posteriors of a set of training images, encoded once; each step samples from them."""

    images: list[TrainingImage]
    mean: "object"  # torch tensors (N, 4, h, w)
    std: "object"

    def by_tone(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, im in enumerate(self.images):
            out.setdefault(im.skin_tone, []).append(i)
        return out


def encode_images(vae, images: list[TrainingImage], read_rgb: Callable[[TrainingImage], np.ndarray],
                  resolution: int, device, dtype) -> LatentBank:
    import torch

    means, stds = [], []
    with torch.inference_mode():
        for im in images:
            x = prepare_image(read_rgb(im), resolution)[None].to(device, dtype)
            dist = vae.encode(x).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
    return LatentBank(images, torch.cat(means), torch.cat(stds))


def store_reader(store) -> Callable[[TrainingImage], np.ndarray]:
    return lambda im: decode_rgb(store.image_path(im.sample_id).read_bytes())


def pick_balanced(rng: np.random.Generator, by_tone: dict[str, list[int]], n: int,
                  tones: list[str] | None = None) -> list[int]:
    """Tone-balanced draw: a tone uniformly (or the given tones), then an image of it uniformly."""
    keys = sorted(by_tone)
    out = []
    for k in range(n):
        tone = tones[k] if tones is not None else keys[int(rng.integers(len(keys)))]
        pool = by_tone.get(tone) or by_tone[keys[int(rng.integers(len(keys)))]]
        out.append(pool[int(rng.integers(len(pool)))])
    return out


def diffusion_loss(unet, noise_scheduler, scaling: float, bank: LatentBank, idx: list[int], hidden,
                   generator, dtype):
    """Per-sample MSE of the UNet's prediction (epsilon or v) on noised cached latents."""
    import torch
    import torch.nn.functional as F

    device = hidden.device
    mean, std = bank.mean[idx], bank.std[idx]
    eps = torch.randn(mean.shape, generator=generator)
    latents = (mean + std * eps) * scaling
    noise = torch.randn(latents.shape, generator=generator)
    t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(idx),), generator=generator)
    latents, noise, t = latents.to(device), noise.to(device), t.to(device)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, t)
    else:
        target = noise
    pred = unet(noisy.to(dtype), t, hidden.to(dtype)).sample
    return F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))


def training_scheduler(pipe):
    """A DDPM scheduler with the model's noise schedule (what SD was trained with)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(pipe.scheduler.config)


def step_rng(seed: int, step: int, rank: int):
    """Per-micro-step randomness from (seed, step, rank): a resumed run draws what it would have."""
    import torch

    rng = np.random.default_rng([seed, step, rank])
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    return rng, gen


def latest_checkpoint(folder: Path) -> Path | None:
    ckpts = sorted((folder / CHECKPOINTS).glob("step-*.pt"))
    return ckpts[-1] if ckpts else None


def matching_checkpoint(folder: Path, fingerprint_: str) -> tuple[dict, Path] | tuple[None, None]:
    """The newest checkpoint (state, path) if it was made from the same settings and images."""
    import torch

    ckpt = latest_checkpoint(folder)
    if ckpt is None:
        return None, None
    state = torch.load(ckpt, map_location="cpu")
    if state.get("fingerprint") != fingerprint_:
        log.info("ignoring checkpoint %s: it belongs to other settings or images", ckpt)
        return None, None
    return state, ckpt


def save_checkpoint(folder: Path, step: int, state: dict) -> None:
    import torch

    d = folder / CHECKPOINTS
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".step-{step:07d}.tmp"
    torch.save({"step": step, **state}, tmp)
    tmp.replace(d / f"step-{step:07d}.pt")
    for old in sorted(d.glob("step-*.pt"))[:-2]:  # keep the last two: one may be mid-write elsewhere
        old.unlink()


def run_loop(accelerator, model, optimizer, steps: int, start: int, seed: int,
             micro_step: Callable, after_step: Callable[[int], None], checkpoint: Callable[[int], None],
             every: int, desc: str) -> list[float]:
    """Optimizer steps `start..steps` with gradient accumulation; logs loss and steps/s; returns losses."""
    accum = accelerator.gradient_accumulation_steps
    losses, t0, logged = [], time.perf_counter(), start
    log_every = max(1, steps // 20)
    for step in progress(range(start, steps), desc=desc, total=steps - start, unit="step"):
        total = 0.0
        for k in range(accum):
            rng, gen = step_rng(seed, step * accum + k, accelerator.process_index)
            with accelerator.accumulate(model):
                loss = micro_step(rng, gen)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) / accum
        after_step(step)
        losses.append(total)
        done = step + 1
        if (done % log_every == 0 or done == steps) and accelerator.is_main_process:
            rate = (done - logged) / max(time.perf_counter() - t0, 1e-9)
            log.info("%s step %d/%d loss %.4f %.2f steps/s", desc, done, steps, total, rate)
            t0, logged = time.perf_counter(), done
        if done % every == 0 and done < steps and accelerator.is_main_process:
            checkpoint(done)
    return losses


def settings_for(cfg: SemanticConfig, kind: str) -> dict:
    """The config fields that shape a `ti` or `lora` model (they go into its manifest and fingerprint)."""
    shared = ("model_id", "revision", "seed", "mixed_precision")
    own = {"ti": ("init_word", "ti_steps", "ti_lr", "ti_scale_lr", "ti_resolution", "ti_batch",
                  "ti_grad_accum", "include_validation"),
           "lora": ("lora_steps", "lora_lr", "lora_resolution", "lora_batch", "lora_grad_accum",
                    "lora_rank", "prior_weight", "class_images", "include_validation")}[kind]
    out = {k: getattr(cfg, k) for k in shared + own}
    if kind == "lora" and cfg.lora_gradient_checkpointing:
        # Recomputed activations move weights by float rounding: a model of its own. Only when on, so
        # models trained before the setting existed keep their fingerprints.
        out["lora_gradient_checkpointing"] = True
    return out


def fingerprint(settings: dict, images: list[TrainingImage], extra: dict | None = None) -> str:
    """Same settings, same images (by content hash), same inputs -> same model; a rerun can skip it."""
    import hashlib

    from builder.core.schema import canonical_json

    blob = canonical_json({"settings": settings, "images": [(i.sample_id, i.sha256) for i in images],
                           "extra": extra or {}})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def place(module, device, dtype) -> None:
    """Move a frozen module; cast only when training in reduced precision (avoids a no-op cast warning)."""
    import torch

    if dtype == torch.float32:
        module.to(device)
    else:
        module.to(device, dtype)


def finished_model(out_dir: Path, fingerprint_: str, weights: str, what: str) -> dict | None:
    """The manifest of a model already trained with these exact settings and images, else None."""
    done = read_manifest(out_dir)
    if done and done.get("fingerprint") == fingerprint_ and (out_dir / weights).is_file():
        log.info("%s already trained (%s); skipping", what, fingerprint_)
        return done
    return None
