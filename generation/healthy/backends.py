"""Healthy-synthetic backends: OpenCV inpainting (CPU, no weights) and a diffusers SD inpainting pipeline
(Kandinsky 2.2: generation.healthy.kandinsky).

A backend turns a batch of `Job`s into one generated RGB patch per job (the pixels of the job's
window). The caller composites the patch through the region, so no backend can touch a pixel
outside it.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from builder.core.backends import Backend
from builder.core.config import HealthyConfig
from builder.core.errors import ConfigError
from builder.core.models import check_pinned, pin_model
from generation.healthy.region import Region, crop_window
from generation.healthy.texture import add_grain

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclasses.dataclass
class Job:
    """One image to heal: RGB input, its region, and the per-sample prompt and seed."""

    image: np.ndarray
    region: Region
    prompt: str | None
    seed: int
    skin: np.ndarray | None = None  # bool (H, W): known healthy skin (where the exemplar fill takes texture)


OPENCV_METHODS = ("telea", "exemplar", "quilt")


def check_opencv_method(method: str) -> str:
    if method not in OPENCV_METHODS:
        raise ConfigError(f"healthy.opencv_method={method!r}: expected one of {list(OPENCV_METHODS)}")
    return method


class OpenCVBackend(Backend):
    """CPU fills, no weights: Telea fast marching + seeded skin grain (`telea`, the method's CPU stand-in),
    membrane colour + skin texture copied from nearby (`exemplar`, generation.healthy.exemplar), or
    membrane colour + texture quilted from clean skin only (`quilt`, generation.healthy.quilt)."""

    kind, name = "inpainting", "opencv"
    settings = ("opencv_radius", "opencv_grain", "opencv_method")
    model_id = revision = identity = None

    def __init__(self, cfg: HealthyConfig, device: str = "cpu"):
        self.radius, self.grain = cfg.opencv_radius, cfg.opencv_grain
        self.method = check_opencv_method(cfg.opencv_method)

    @classmethod
    def check(cls, cfg: HealthyConfig) -> None:
        check_opencv_method(cfg.opencv_method)

    @classmethod
    def fingerprint(cls, cfg: HealthyConfig, **run) -> dict:
        """The quilt fill's revision: a work folder healed by an earlier revision is not reused."""
        from generation.healthy.quilt import REVISION

        return {"quilt_revision": REVISION} if cfg.opencv_method == "quilt" else {}

    @classmethod
    def uses_seed(cls, cfg: HealthyConfig) -> bool:
        """A smooth Telea fill (no grain) does not depend on the per-sample seed."""
        return cfg.opencv_grain > 0 or cfg.opencv_method != "telea"

    @classmethod
    def card_text(cls, cfg: HealthyConfig) -> str:
        if cfg.opencv_method == "telea":
            return (f"OpenCV Telea inpainting (radius {cfg.opencv_radius} px) with seeded skin grain "
                    f"{cfg.opencv_grain}; no diffusion model and no prompt")
        if cfg.opencv_method == "quilt":
            return ("CPU `quilt` fill (membrane colour + texture quilted from clean skin of the same photo that "
                    "matches the skin around the lesion: no text, marks, drapes or frame edges); no diffusion "
                    "model and no prompt")
        return (f"CPU `{cfg.opencv_method}` fill (membrane colour + nearest real skin texture); no diffusion "
                "model and no prompt")

    def window(self, job: Job) -> tuple[int, int, int, int]:
        # Telea reads known pixels within `radius` of the region: a margin of 2*radius+2 is
        # plenty, and inpainting a crop instead of the frame keeps large photos fast. The
        # exemplar and quilt fills look for skin to copy: a margin of twice the hole's size.
        h, w = job.region.mask.shape
        x0, y0, x1, y1 = job.region.box
        m = 2 * self.radius + 2 if self.method == "telea" else 2 * max(x1 - x0, y1 - y0) + 8
        return max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)

    def params(self) -> dict:
        if self.method == "telea":
            return {"method": "telea", "radius": self.radius, "grain": self.grain}
        return {"method": self.method}

    def generate(self, jobs: list[Job]) -> list[np.ndarray]:
        import cv2

        from generation.healthy.exemplar import exemplar_fill
        from generation.healthy.quilt import quilt_fill

        out = []
        for job in jobs:
            x0, y0, x1, y1 = self.window(job)
            crop = np.ascontiguousarray(job.image[y0:y1, x0:x1])
            hole = job.region.mask[y0:y1, x0:x1]
            if self.method != "telea":
                skin = job.skin[y0:y1, x0:x1] if job.skin is not None else ~hole
                fill = exemplar_fill if self.method == "exemplar" else quilt_fill
                out.append(fill(crop, hole, skin, job.seed))
                continue
            mask = hole.astype(np.uint8) * 255
            filled = cv2.inpaint(crop, mask, self.radius, cv2.INPAINT_TELEA)
            out.append(add_grain(filled, crop, mask > 0, self.grain, job.seed) if self.grain else filled)
        return out


class DiffusionInpainting:
    """What the diffusion inpainting backends share (mixed in after `Backend`): the model-sized window, the
    batch's crop -> model -> paste-back, per-job CPU generators. A backend sets `size`, `steps`, `guidance`,
    `prompt`, `device`, `dtype_name` and `pipe`, and may change `model_mask` and `run_pipeline`."""

    def window(self, job: Job) -> tuple[int, int, int, int]:
        h, w = job.region.mask.shape
        return crop_window(job.region.box, h, w, self.size)

    def params(self) -> dict:
        # The device type changes pixels (kernels differ); its index does not (ranks on cuda:0, cuda:1).
        return {"steps": self.steps, "guidance": self.guidance, "crop_size": self.size,
                "dtype": self.dtype_name, "device": self.device.split(":")[0]}

    def prompt_for(self, tone: str) -> str:
        """The prompt of a photo of this skin tone (the row's `prompt`)."""
        return self.prompt.format(tone=tone)

    def model_mask(self, mask: np.ndarray) -> np.ndarray:
        """The mask the model sees (uint8, 255 = repaint) from the region at model size: any coverage.
        What the stage may change stays the hard region whatever the model is shown."""
        return np.where(mask > 0, 255, 0).astype(np.uint8)

    def generate(self, jobs: list[Job]) -> list[np.ndarray | None]:
        """1. crop and resize each window to the model size; 2. run the batch; 3. resize back.

        None for a job whose output is not finite."""
        import torch
        from PIL import Image

        s = self.size
        windows = [self.window(j) for j in jobs]
        images, masks = [], []
        for job, (x0, y0, x1, y1) in zip(jobs, windows):
            images.append(Image.fromarray(_resize(job.image[y0:y1, x0:x1], s, s)))
            # Area-resize then any-coverage keeps thin regions in the model's mask.
            m = _resize(job.region.mask[y0:y1, x0:x1].astype(np.uint8) * 255, s, s)
            masks.append(Image.fromarray(self.model_mask(m)))
        with torch.inference_mode():
            result = self.run_pipeline(jobs, images, masks)
        out = []
        for arr, (x0, y0, x1, y1) in zip(result, windows):
            if not np.isfinite(arr).all():
                out.append(None)  # fp16 VAEs can overflow to NaN: a black patch must not pass as skin
                continue
            rgb = np.clip(np.rint(np.asarray(arr, np.float32) * 255.0), 0, 255).astype(np.uint8)
            out.append(_resize(rgb, y1 - y0, x1 - x0))
        return out

    def run_pipeline(self, jobs: list[Job], images: list, masks: list) -> list[np.ndarray]:
        """One pipeline call over the batch: float RGB in [0, 1] per job."""
        import torch

        # CPU generators: the same seed gives the same noise on every card and on CPU.
        gens = [torch.Generator("cpu").manual_seed(j.seed) for j in jobs]
        s = self.size
        return list(self.pipe(prompt=[j.prompt for j in jobs], image=images, mask_image=masks,
                              height=s, width=s, num_inference_steps=self.steps,
                              guidance_scale=self.guidance, generator=gens, output_type="np").images)


class DiffusersBackend(Backend, DiffusionInpainting):
    """`AutoPipelineForInpainting` from a Hub id + revision or a local folder, loaded once, batched."""

    kind, name = "inpainting", "diffusers"
    settings = ("model_id", "revision", "prompt", "steps", "guidance", "dtype", "crop_size")
    tags, prompted = ("diffusers",), True
    REVISION = "healthy.revision"

    def __init__(self, cfg: HealthyConfig, device: str = "cpu"):
        pinned = pin_model(cfg.model_id, cfg.revision, setting=self.REVISION)
        # A local folder is identified by its content (revision), not by where it lies on disk,
        # so ids agree across machines and checkouts.
        self.model_id, self.revision, self.identity = pinned.name, pinned.revision, pinned.identity
        self.size, self.steps, self.guidance = cfg.crop_size, cfg.steps, cfg.guidance
        self.prompt = cfg.prompt
        self.device = device
        self.dtype_name = resolve_dtype(cfg.dtype, device)
        self.pipe = load_inpaint_pipeline(pinned.source, pinned.load_revision, self.dtype_name, device)

    @classmethod
    def check(cls, cfg: HealthyConfig) -> None:
        if not cfg.model_id:
            raise ConfigError("healthy.backend=diffusers needs a model: set healthy.model_id (or --model) "
                              "to a Hub id such as runwayml/stable-diffusion-inpainting or a local folder")
        check_pinned(cfg.model_id, cfg.revision, setting=cls.REVISION)

    @classmethod
    def fingerprint(cls, cfg: HealthyConfig, *, batch_size: int = 1, **run) -> dict:
        return {"batch_size": batch_size}  # batch composition changes diffusers pixels by +-1

    @classmethod
    def card_text(cls, cfg: HealthyConfig) -> str:
        return (f"diffusion inpainting, prompt `{cfg.prompt}` (`{{tone}}` = light, medium, dark), "
                f"{cfg.steps} steps, guidance {cfg.guidance}")


def resolve_dtype(name: str, device: str) -> str:
    """`auto` means fp16 on CUDA (as the original method ran) and fp32 elsewhere."""
    if name not in DTYPES:
        raise ConfigError(f"healthy.dtype={name!r} is not one of {DTYPES}")
    if name == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    if name == "float16" and not device.startswith("cuda"):
        raise ConfigError(f"healthy.dtype=float16 needs a CUDA device, got --device {device}; "
                          "use dtype auto, float32 or bfloat16 on CPU")
    return name


def load_inpaint_pipeline(model_id: str, revision: str | None, dtype_name: str, device: str):
    """Load once per process; fail clearly on a missing model or a tokenizer that did not load."""
    import torch
    from diffusers import AutoPipelineForInpainting

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but torch sees no CUDA device; use --device cpu")
    try:
        # The SD safety checker blanks close-ups of skin as NSFW: clinical photos are not its domain.
        pipe = AutoPipelineForInpainting.from_pretrained(
            model_id, revision=revision, dtype=getattr(torch, dtype_name),
            safety_checker=None, requires_safety_checker=False)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load inpainting model {model_id!r} (revision {revision!r}): {e}. "
                          "Give a Hub id reachable from here or a local folder saved with "
                          "save_pretrained") from e
    check_tokenizer(pipe, model_id)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def check_tokenizer(pipe, model_id: str) -> None:
    """A pipeline's tokenizer (`tokenizer`, or a prior's `prior_tokenizer` for Kandinsky's combined pipelines)
    must have loaded with its vocabulary; offline, CLIPTokenizer.from_pretrained can return a 2-token one."""
    names = [n for n in ("tokenizer", "prior_tokenizer", "tokenizer_2") if getattr(pipe, n, None) is not None]
    if not names:
        raise ConfigError(f"model {model_id!r}: {type(pipe).__name__} has no tokenizer; healthy inpainting "
                          "needs a prompted pipeline (SD inpainting, or Kandinsky 2.2 with its prior)")
    for n in names:
        tok = getattr(pipe, n)
        if len(tok) <= 2:
            raise ConfigError(f"model {model_id!r}: its {n} loaded with {len(tok)} tokens (files missing or "
                              f"Hub offline); download the model with its {n}/ folder or point --model at a "
                              "complete local copy")


def _resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    if arr.shape[:2] == (height, width):
        return arr
    shrinking = height * width < arr.shape[0] * arr.shape[1]
    return cv2.resize(arr, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
