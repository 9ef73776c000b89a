"""SAM 3 mask backend: the lesion from transformers' `Sam3Model` prompted with text, skin from the CPU rule.

Per photo: the image is prepared as `Sam3ImageProcessor` prepares it (below), the model runs with the
text prompt `masks.prompt` (tokenised once, as `Sam3Processor` does: padded to 32 tokens), and its
outputs are read as `post_process_instance_segmentation` reads them: an instance's score is
sigmoid(its logit) x sigmoid(the presence logit); instances scoring over `SCORE_THRESHOLD` are kept,
their mask probabilities resized (bilinear) to the photo's size and cut at `MASK_THRESHOLD`. The lesion
is the union of the kept instances; the confidence is the highest kept score (0 when no lesion). Skin
is the CPU backend's `detect_skin` at `masks.side` px. Labels: 0 background, 1 lesion, 4 skin (no
marker or ruler label: the prompt names only the lesion).

Image preparation without torchvision (which the processor needs and the CPU torch build cannot have
beside it): resize to the processor's `size` (1008 x 1008, aspect not kept, no padding) with bilinear
antialiased interpolation rounded back to 8 bits (what torchvision's resize does), rescale by
`rescale_factor` (1/255), normalise with `image_mean` / `image_std` (0.5 each). The values are read
from the model's `preprocessor_config.json` when it has one.
"""
from __future__ import annotations

import numpy as np

from builder.core.backends import Backend
from builder.core.config import MasksConfig
from builder.core.errors import ConfigError
from builder.core.models import check_pinned, local_revision, pin_model
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN
from curation.source.automasks.cpu import AutoMaskResult, detect_skin, downscale

METHOD, VERSION = "sam3-text", "1"
SCORE_THRESHOLD = 0.3   # post_process_instance_segmentation's default `threshold`
MASK_THRESHOLD = 0.5    # and its `mask_threshold` (on sigmoid probabilities)
TEXT_LENGTH = 32        # Sam3Processor pads / truncates the prompt to this many tokens
PROCESSOR_FILE = "preprocessor_config.json"
# Sam3ImageProcessor's class defaults (transformers 5): used when the model folder has no processor file
PROCESSOR_DEFAULTS = {"size": {"height": 1008, "width": 1008}, "rescale_factor": 1 / 255,
                      "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2,
                      "do_resize": True, "do_rescale": True, "do_normalize": True}
_BILINEAR = 2  # PIL's code for bilinear, as image processor configs store `resample`


class Sam3Backend(Backend):
    """Load SAM 3 and embed the prompt once; `segment` photos one at a time."""

    kind, name = "mask", "sam3"
    settings = ("model_id", "revision", "prompt")
    method, version = METHOD, VERSION
    fits_on_hand_masks = False
    REVISION = "masks.revision"

    @classmethod
    def check(cls, cfg: MasksConfig) -> None:
        if not cfg.model_id:
            raise ConfigError("masks.backend=sam3 needs masks.model_id (--model): facebook/sam3 with "
                              "masks.revision (--revision) pinned to a commit, or a local model folder")
        check_pinned(cfg.model_id, cfg.revision, setting=cls.REVISION)
        if not isinstance(cfg.prompt, str) or not cfg.prompt.strip():
            raise ConfigError(f"masks.prompt={cfg.prompt!r}: the sam3 backend needs a text prompt naming what "
                              "to segment, e.g. 'skin lesion'")

    @classmethod
    def fingerprint(cls, cfg: MasksConfig, **run) -> dict:
        """A local model folder's content (its path alone is in the config): new weights redo the masks."""
        digest = local_revision(cfg.model_id) if cfg.model_id else None
        return {"model_content": digest} if digest else {}

    def __init__(self, cfg: MasksConfig, device: str = "cpu"):
        import torch
        from transformers import AutoTokenizer, Sam3Model

        self.check(cfg)
        pinned = pin_model(cfg.model_id, cfg.revision, setting=self.REVISION)
        self.model_id, self.revision = pinned.name, pinned.revision
        self.device, self.side = device, cfg.side
        self.model = Sam3Model.from_pretrained(pinned.source, revision=pinned.load_revision).to(device).eval()
        self.processor = processor_settings(read_processor_config(pinned.source, pinned.load_revision))
        tok = AutoTokenizer.from_pretrained(pinned.source, revision=pinned.load_revision)
        text = tok([cfg.prompt.strip()], padding="max_length", max_length=TEXT_LENGTH, truncation=True,
                   return_tensors="pt").to(device)
        self.attention_mask = text.attention_mask
        with torch.inference_mode():
            self.text = self.model.get_text_features(input_ids=text.input_ids, attention_mask=text.attention_mask,
                                                       return_dict=True)

    def segment(self, rgb: np.ndarray) -> AutoMaskResult:
        import torch

        pixels = preprocess(rgb, **self.processor).to(self.device, self.model.dtype)  # the checkpoint's dtype
        with torch.inference_mode():
            out = self.model(pixel_values=pixels, text_embeds=self.text, attention_mask=self.attention_mask)
        scores = (out.pred_logits[0].sigmoid() * out.presence_logits[0].sigmoid()).float().cpu()
        lesion, conf = lesion_mask(out.pred_masks[0].float(), scores, rgb.shape[:2])
        return label_map(rgb, lesion, conf, self.side)


def read_processor_config(source: str, revision: str | None) -> dict:
    """The model's image-processor settings (its `preprocessor_config.json`), else the processor's defaults."""
    import json

    from transformers.utils import cached_file

    path = cached_file(source, PROCESSOR_FILE, revision=revision, _raise_exceptions_for_missing_entries=False)
    return {**PROCESSOR_DEFAULTS, **(json.loads(open(path).read()) if path else {})}


def processor_settings(raw: dict) -> dict:
    """`preprocess` arguments from processor settings; a step this module does not reproduce is refused."""
    unsupported = {k: raw.get(k) for k, want in (("do_resize", True), ("do_rescale", True), ("do_normalize", True),
                                                 ("resample", _BILINEAR)) if raw.get(k) != want}
    size = raw.get("size") or {}
    if unsupported or set(size) != {"height", "width"}:
        raise ConfigError(f"masks.model_id: {PROCESSOR_FILE} asks for {unsupported or {'size': size}}; the sam3 "
                          "backend reproduces Sam3ImageProcessor's bilinear resize to size {height, width}, "
                          "rescale and normalisation only: use the model's own processor settings")
    return {"size": (int(size["height"]), int(size["width"])), "rescale": float(raw["rescale_factor"]),
            "mean": tuple(map(float, raw["image_mean"])), "std": tuple(map(float, raw["image_std"]))}


def preprocess(rgb: np.ndarray, size: tuple[int, int], rescale: float, mean: tuple, std: tuple):
    """(1, 3, H, W) float32 pixel values: antialiased bilinear resize rounded to 8 bits, rescale, normalise."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1)[None].float()
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((x * rescale - m) / s).contiguous()


def lesion_mask(mask_logits, scores, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Union of the instances scoring over SCORE_THRESHOLD, at `shape`; the highest score that adds pixels."""
    import torch.nn.functional as F

    lesion, conf = np.zeros(shape, bool), 0.0
    for q in scores.argsort(descending=True).tolist():
        score = float(scores[q])
        if score <= SCORE_THRESHOLD:
            break
        prob = F.interpolate(mask_logits[q][None, None].sigmoid(), size=shape, mode="bilinear",
                             align_corners=False)[0, 0]
        inst = (prob > MASK_THRESHOLD).cpu().numpy()
        if inst.any():
            lesion |= inst
            conf = max(conf, score)
    return lesion, round(conf, 4)


def label_map(rgb: np.ndarray, lesion: np.ndarray, confidence: float, side: int) -> AutoMaskResult:
    """0 background, 4 skin (the CPU rule at `side` px, nearest-resized), 1 lesion over both."""
    import cv2

    h, w = rgb.shape[:2]
    skin = cv2.resize(detect_skin(downscale(rgb, side)).astype(np.uint8), (w, h),
                      interpolation=cv2.INTER_NEAREST) > 0
    lm = np.where(skin, LABEL_SKIN, LABEL_BACKGROUND).astype(np.uint8)
    lm[lesion] = LABEL_LESION
    return AutoMaskResult(lm, confidence if lesion.any() else 0.0, float(lesion.mean()))
