"""Image-to-image sampling from healthy synthetics: the paper's "healthy prompts" (`semantic.sampling: img2img`).

Every sample starts from one healthy synthetic (strength `semantic.strength`, 0.725 in the paper): the
disease's textual-inversion token and LoRA paint the disease onto that skin. The healthy image is the
row's lineage, in the columns every rule already reads:

- `parent_id` is the healthy row's sample id (the image the sample was conditioned on);
- `source_ids` holds the healthy image's real sources beside the photos the disease's models saw, so the
  strict leakage rule sends a sample conditioned on a healthy image of a test photo to test, never train.

The image-to-image pipeline is built from the loaded text-to-image pipeline's components (no second
load), so the textual-inversion tokens and LoRA adapters loaded into one are in the other.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core.config import SemanticConfig
from builder.core.directions import check_cross_source
from builder.core.errors import ConfigError
from builder.core.store import StageStore

SAMPLINGS = ("text2img", "img2img")


@dataclasses.dataclass(frozen=True)
class HealthyPrompt:
    """A healthy synthetic that conditions image-to-image samples."""

    sample_id: str
    source_ids: tuple[str, ...]
    skin_tone: str
    sha256: str


def check_sampling(cfg: SemanticConfig) -> None:
    if cfg.sampling not in SAMPLINGS:
        raise ConfigError(f"semantic.sampling={cfg.sampling!r}: expected one of {list(SAMPLINGS)}")
    check_cross_source(cfg.cross_source, "semantic.cross_source")
    if not 0.0 < cfg.strength <= 1.0:
        raise ConfigError(f"semantic.strength={cfg.strength} must be in (0, 1] (the paper: 0.725)")


def healthy_prompts(store: StageStore | None) -> dict[str, HealthyPrompt]:
    """sample id -> HealthyPrompt for every healthy row of `store` (all splits: the leakage rule sorts them)."""
    import hashlib

    if store is None:
        raise ConfigError("semantic.sampling=img2img samples from healthy synthetics: pass the healthy stage "
                          "store (`generate sample --healthy STORE`), or set semantic.sampling to text2img")
    out = {}
    for r in sorted(store.records(), key=lambda r: r.sample_id):
        if r.kind == "healthy":
            digest = hashlib.sha256(store.image_path(r.sample_id).read_bytes()).hexdigest()
            out[r.sample_id] = HealthyPrompt(r.sample_id, tuple(r.source_ids), r.skin_tone, digest)
    if not out:
        raise ConfigError(f"no healthy synthetics in {store.root}; run the healthy stage first, or set "
                          "semantic.sampling to text2img")
    return out


def img2img_pipeline(pipe):
    """diffusers' StableDiffusionImg2ImgPipeline over the same modules as the text-to-image `pipe`."""
    from diffusers import StableDiffusionImg2ImgPipeline

    parts = {k: v for k, v in pipe.components.items() if k != "requires_safety_checker"}
    out = StableDiffusionImg2ImgPipeline(**parts, requires_safety_checker=False)
    out.set_progress_bar_config(disable=True)
    return out


def start_image(rgb: np.ndarray, resolution: int):
    """Shorter side to `resolution` (bicubic), centre crop: the PIL image the pipeline starts from."""
    from PIL import Image

    im = Image.fromarray(rgb)
    scale = resolution / min(im.size)
    w, h = max(resolution, round(im.width * scale)), max(resolution, round(im.height * scale))
    im = im.resize((w, h), Image.BICUBIC)
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return im.crop((left, top, left + resolution, top + resolution))


def generate_img2img_batch(pipe, prompts: list[str], images: list, seeds: list[int],
                           cfg: SemanticConfig) -> list[np.ndarray | None]:
    """One image-to-image call; CPU generators (a seed gives the same noise on any device); None for
    an image with non-finite pixels."""
    import torch

    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    neg = [cfg.negative_prompt] * len(prompts) if cfg.negative_prompt else None
    with torch.inference_mode():
        out = pipe(prompt=prompts, image=images, negative_prompt=neg, strength=cfg.strength,
                   num_inference_steps=cfg.sample_steps, guidance_scale=cfg.guidance, generator=gens,
                   output_type="np").images
    return [np.clip(np.round(im * 255), 0, 255).astype(np.uint8) if np.isfinite(im).all() else None
            for im in out]
