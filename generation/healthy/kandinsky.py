"""Kandinsky 2.2 inpainting, the paper's healthy-synthetic generator: a prior turns the prompt into a CLIP
image embedding, then an inpainting decoder paints the masked region from it.

The backend runs diffusers' combined pipeline (`KandinskyV22InpaintCombinedPipeline`) as its two parts,
so every sample's seed drives both: the prior draws the prompt's and the negative prompt's embeddings
with the sample's generators, then the decoder paints with the sample's generator. Batches and seeds
behave as in the SD backend (a batch of N jobs is one prior call of 2N rows and one decoder call of N).

Model sources, pinned by the one policy (builder.core.models):
- a local folder holding the combined pipeline (prior_* components beside unet/movq), saved with
  save_pretrained: `healthy.prior_model_id` stays null;
- the decoder (`healthy.model_id`, e.g. kandinsky-community/kandinsky-2-2-decoder-inpaint) and the prior
  (`healthy.prior_model_id`, e.g. kandinsky-community/kandinsky-2-2-prior), each a Hub id with its commit
  or a folder. The prior is never fetched implicitly (the decoder's model card names one, unpinned).

What the model sees is the paper's mask: the region dilated with a square kernel of
`healthy.model_mask_dilate` px, then blurred with a Gaussian of sigma `healthy.model_mask_blur` px (at the
model's size). The pipeline repaints where that mask is at least half; the stage composites through the
hard region, so every pixel outside it stays the input's.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from builder.core.config import HealthyConfig
from builder.core.errors import ConfigError
from builder.core.models import check_pinned, pin_model
from builder.core.backends import Backend
from generation.healthy.backends import DiffusionInpainting, Job, check_tokenizer, resolve_dtype

PRIOR_REVISION = "healthy.prior_revision"
COMBINED = "KandinskyV22InpaintCombinedPipeline"


class KandinskyBackend(Backend, DiffusionInpainting):
    """Kandinsky 2.2 inpainting (prior + decoder), the paper's prompts and mask processing."""

    kind, name = "inpainting", "kandinsky22"
    settings = ("model_id", "revision", "prior_model_id", "prior_revision", "kandinsky_prompt",
                "kandinsky_negative_prompt", "steps", "guidance", "prior_steps", "prior_guidance",
                "model_mask_dilate", "model_mask_blur", "dtype", "crop_size")
    tags, prompted = ("diffusers",), True
    REVISION = "healthy.revision"

    def __init__(self, cfg: HealthyConfig, device: str = "cpu"):
        pinned = pin_model(cfg.model_id, cfg.revision, setting=self.REVISION)
        prior = (pin_model(cfg.prior_model_id, cfg.prior_revision, setting=PRIOR_REVISION, flag=None)
                 if cfg.prior_model_id else None)
        self.model_id, self.revision, self.identity = pinned.name, pinned.revision, pinned.identity
        self.prior = None if prior is None else f"{prior.name}@{prior.revision}"
        self.size, self.steps, self.guidance = cfg.crop_size, cfg.steps, cfg.guidance
        self.prompt, self.negative_prompt = cfg.kandinsky_prompt, cfg.kandinsky_negative_prompt
        self.prior_steps, self.prior_guidance = cfg.prior_steps, cfg.prior_guidance
        self.dilate, self.blur = cfg.model_mask_dilate, cfg.model_mask_blur
        self.device = device
        self.dtype_name = resolve_dtype(cfg.dtype, device)
        self.pipe = load_kandinsky(pinned, prior, self.dtype_name, device)

    @classmethod
    def check(cls, cfg: HealthyConfig) -> None:
        if not cfg.model_id:
            raise ConfigError("healthy.backend=kandinsky22 needs a model: set healthy.model_id (or --model) to "
                              "kandinsky-community/kandinsky-2-2-decoder-inpaint with its commit (and "
                              "healthy.prior_model_id to kandinsky-community/kandinsky-2-2-prior with its "
                              "commit), or to a local folder holding the combined pipeline")
        check_pinned(cfg.model_id, cfg.revision, setting=cls.REVISION)
        if cfg.prior_model_id:
            check_pinned(cfg.prior_model_id, cfg.prior_revision, setting=PRIOR_REVISION, flag=None)
        elif not Path(cfg.model_id).is_dir():
            raise ConfigError(f"healthy.model_id={cfg.model_id!r} is a Hub id, and Kandinsky 2.2's decoder needs "
                              "its prior: set healthy.prior_model_id (e.g. kandinsky-community/kandinsky-2-2-prior) "
                              "and healthy.prior_revision to its commit")
        for name in ("prior_steps", "model_mask_dilate"):
            if getattr(cfg, name) < (1 if name == "prior_steps" else 0):
                raise ConfigError(f"healthy.{name}={getattr(cfg, name)} must be >= "
                                  f"{1 if name == 'prior_steps' else 0}")
        if cfg.model_mask_blur < 0:
            raise ConfigError(f"healthy.model_mask_blur={cfg.model_mask_blur} must be >= 0 (0 = no blur)")
        try:
            cfg.kandinsky_prompt.format(tone="light")
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(f"healthy.kandinsky_prompt={cfg.kandinsky_prompt!r} must be a template whose only "
                              f"field is {{tone}} ({e!r})") from e

    @classmethod
    def fingerprint(cls, cfg: HealthyConfig, *, batch_size: int = 1, **run) -> dict:
        return {"batch_size": batch_size}  # batch composition changes diffusers pixels by +-1

    @classmethod
    def card_text(cls, cfg: HealthyConfig) -> str:
        return (f"Kandinsky 2.2 inpainting (prior {cfg.prior_steps} steps, guidance {cfg.prior_guidance}; "
                f"decoder {cfg.steps} steps, guidance {cfg.guidance}), prompt `{cfg.kandinsky_prompt}`, "
                f"negative prompt `{cfg.kandinsky_negative_prompt}`, the model's mask dilated "
                f"({cfg.model_mask_dilate} px kernel) and blurred (sigma {cfg.model_mask_blur})")

    def params(self) -> dict:
        out = {**DiffusionInpainting.params(self), "negative_prompt": self.negative_prompt,
               "prior_steps": self.prior_steps, "prior_guidance": self.prior_guidance,
               "model_mask_dilate": self.dilate, "model_mask_blur": self.blur}
        if self.prior:
            out["prior"] = self.prior
        return out

    def model_mask(self, mask: np.ndarray) -> np.ndarray:
        return paper_mask(DiffusionInpainting.model_mask(self, mask), self.dilate, self.blur)

    def run_pipeline(self, jobs: list[Job], images: list, masks: list) -> list[np.ndarray]:
        """The prior (prompt and negative prompt rows, one generator each), then the decoder."""
        import torch

        def gens(offset: int):
            return [torch.Generator("cpu").manual_seed((j.seed + offset) % 2**63) for j in jobs]

        negative = [self.negative_prompt] * len(jobs)
        embeds, negative_embeds = self.pipe.prior_pipe(
            prompt=[j.prompt for j in jobs], negative_prompt=negative, generator=gens(0) + gens(1),
            num_inference_steps=self.prior_steps, guidance_scale=self.prior_guidance, output_type="pt",
            return_dict=False)
        s = self.size
        return list(self.pipe.decoder_pipe(
            image=images, mask_image=masks, image_embeds=embeds, negative_image_embeds=negative_embeds,
            height=s, width=s, num_inference_steps=self.steps, guidance_scale=self.guidance,
            generator=gens(2), output_type="np").images)


def paper_mask(mask: np.ndarray, dilate: int, blur: float) -> np.ndarray:
    """uint8 mask -> dilated with a `dilate` x `dilate` square kernel, then Gaussian-blurred (sigma `blur`)."""
    import cv2

    out = mask
    if dilate > 0:
        out = cv2.dilate(out, np.ones((dilate, dilate), np.uint8))
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    return out


def load_kandinsky(pinned, prior, dtype_name: str, device: str):
    """The combined pipeline: from one folder that holds it, or from the decoder and the prior."""
    import torch
    from diffusers import (AutoPipelineForInpainting, KandinskyV22InpaintCombinedPipeline,
                           KandinskyV22InpaintPipeline, KandinskyV22PriorPipeline)

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but torch sees no CUDA device; use --device cpu")
    dtype = getattr(torch, dtype_name)
    try:
        if prior is None:
            if _class_name(pinned.source) != COMBINED:
                raise ConfigError(f"model folder {pinned.name!r} holds {_class_name(pinned.source)!r}, not "
                                  f"{COMBINED}: set healthy.prior_model_id to the prior (a folder, or "
                                  "kandinsky-community/kandinsky-2-2-prior with healthy.prior_revision)")
            pipe = AutoPipelineForInpainting.from_pretrained(pinned.source, dtype=dtype)
        else:
            dec = KandinskyV22InpaintPipeline.from_pretrained(pinned.source, revision=pinned.load_revision,
                                                              dtype=dtype)
            pri = KandinskyV22PriorPipeline.from_pretrained(prior.source, revision=prior.load_revision, dtype=dtype)
            pipe = KandinskyV22InpaintCombinedPipeline(
                unet=dec.unet, scheduler=dec.scheduler, movq=dec.movq, prior_prior=pri.prior,
                prior_image_encoder=pri.image_encoder, prior_text_encoder=pri.text_encoder,
                prior_tokenizer=pri.tokenizer, prior_scheduler=pri.scheduler,
                prior_image_processor=pri.image_processor)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load Kandinsky 2.2 inpainting from {pinned.name!r} (revision "
                          f"{pinned.revision!r}){'' if prior is None else f' and prior {prior.name!r}'}: {e}. "
                          "Give Hub ids reachable from here with their commits, or local folders saved with "
                          "save_pretrained") from e
    if not hasattr(pipe, "prior_pipe"):
        raise ConfigError(f"model {pinned.name!r} loaded as {type(pipe).__name__}, not Kandinsky 2.2's combined "
                          "inpainting pipeline; use --backend diffusers for SD-style inpainting models")
    check_tokenizer(pipe, pinned.name)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _class_name(folder: str) -> str | None:
    index = Path(folder) / "model_index.json"
    return json.loads(index.read_text()).get("_class_name") if index.is_file() else None
