"""Learned mask backend: frozen pretrained vision features + colour features, a light head fit on the masked photos.

The FEDD idea (few labels, pretrained features, a linear probe) with a transformers vision model
(DINOv2-like: patch tokens of `last_hidden_state`). Each photo is read at `side` px; per pixel of a
`GRID` x `GRID` grid the head sees the model's patch feature there (bilinear) and colour features
relative to the photo's own surrounding skin (the CPU backend's Lab reference). The head is a
standardised multinomial logistic regression (scikit-learn) over background / lesion / skin, fit on
pixels sampled with a fixed seed from every photo that has a mask, then applied to the rest.
Confidence: the mean top-class probability over the lesion and a ring around it (where the head
hesitates) x (1 - the frame border fraction the lesion covers).
"""
from __future__ import annotations

import numpy as np

from builder.core.backends import Backend
from builder.core.config import MasksConfig
from builder.core.errors import ConfigError
from builder.core.models import check_pinned, pin_model
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN
from curation.source.automasks.cpu import AutoMaskResult, detect_skin, downscale, lesion_score

METHOD, VERSION = "learned-probe", "1"
GRID = 64                 # head resolution (pixels per side of the feature grid)
PIXELS_PER_IMAGE = 1500   # training pixels sampled per masked photo
CLASSES = (LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN)
_MEAN, _STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])  # ImageNet (DINOv2)


class LearnedBackend(Backend):
    """Load the vision model once; `fit` on (photo, label map) pairs, then `segment` photos."""

    kind, name = "mask", "learned"
    settings = ("model_id", "revision")
    method, version = METHOD, VERSION
    fits_on_hand_masks = True
    REVISION = "masks.revision"

    @classmethod
    def check(cls, cfg: MasksConfig) -> None:
        if not cfg.model_id:
            raise ConfigError("masks.backend=learned needs masks.model_id (--model): e.g. facebook/dinov2-small "
                              "with masks.revision (--revision) pinned to a commit, or a local model folder")
        check_pinned(cfg.model_id, cfg.revision, setting=cls.REVISION)

    def __init__(self, cfg: MasksConfig, device: str = "cpu"):
        import torch
        from transformers import AutoModel

        self.check(cfg)
        pinned = pin_model(cfg.model_id, cfg.revision, setting=self.REVISION)
        self.model_id, self.revision = pinned.name, pinned.revision
        self.device, self.side = device, cfg.side
        self.model = AutoModel.from_pretrained(pinned.source, revision=pinned.load_revision).to(device).eval()
        size = getattr(self.model.config, "image_size", 224)
        patch = getattr(self.model.config, "patch_size", 14)
        self.input_size, self.grid = (size // patch) * patch, size // patch
        self.head = None
        torch.manual_seed(0)

    def features(self, rgb: np.ndarray) -> np.ndarray:
        """(GRID, GRID, C): model patch features + colour-contrast features, per grid cell."""
        import cv2
        import torch

        small = downscale(rgb, self.side)
        x = cv2.resize(small, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA) / 255.0
        x = torch.from_numpy(((x - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)).to(self.device)
        with torch.inference_mode():
            tokens = self.model(pixel_values=x).last_hidden_state[0, -self.grid * self.grid:]
        fmap = tokens.reshape(self.grid, self.grid, -1).float().cpu().numpy()
        deep = _resize(fmap, cv2.INTER_LINEAR)
        skin = detect_skin(small)
        score = lesion_score(small, skin)
        lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32) / 255.0
        yy, xx = np.mgrid[:small.shape[0], :small.shape[1]]
        radius = np.hypot(yy / small.shape[0] - 0.5, xx / small.shape[1] - 0.5)
        colour = np.dstack([lab, score[..., None] / 10.0, skin[..., None].astype(np.float32), radius[..., None]])
        colour = _resize(colour, cv2.INTER_AREA)
        return np.concatenate([deep, colour], -1)

    def fit(self, pairs) -> int:
        """Fit the head on (photo, label map) pairs (marker/ruler count as background); returns photos used."""
        import cv2
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(0)
        xs, ys, n = [], [], 0
        for rgb, label_map in pairs:
            target = cv2.resize(label_map, (GRID, GRID), interpolation=cv2.INTER_NEAREST)
            target = np.where(np.isin(target, CLASSES), target, LABEL_BACKGROUND).reshape(-1)
            feats = self.features(rgb).reshape(GRID * GRID, -1)
            pick = rng.choice(target.size, min(PIXELS_PER_IMAGE, target.size), replace=False)
            xs.append(feats[pick])
            ys.append(target[pick])
            n += 1
        y = np.concatenate(ys) if ys else np.zeros(0)
        if n < 2 or LABEL_LESION not in y:
            raise ConfigError(f"masks.backend=learned needs at least 2 photos with hand masks (with lesion "
                              f"pixels) in the source to fit its head; found {n}. Use masks.backend=cpu")
        self.head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.5))
        self.head.fit(np.concatenate(xs), y)
        return n

    def segment(self, rgb: np.ndarray) -> AutoMaskResult:
        import cv2
        from scipy import ndimage as ndi

        if self.head is None:
            raise RuntimeError("LearnedBackend.segment before fit")
        prob = self.head.predict_proba(self.features(rgb).reshape(GRID * GRID, -1)).reshape(GRID, GRID, -1)
        h, w = rgb.shape[:2]
        full = cv2.resize(prob.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        classes = np.asarray(self.head.classes_, np.uint8)
        lm = classes[full.argmax(-1)]
        lesion = ndi.binary_fill_holes(ndi.binary_opening(lm == LABEL_LESION, iterations=2))
        lm[(lm == LABEL_LESION) & ~lesion] = LABEL_SKIN
        lm[lesion] = LABEL_LESION
        small = cv2.resize(lesion.astype(np.uint8), (GRID, GRID), interpolation=cv2.INTER_NEAREST) > 0
        return AutoMaskResult(lm, _confidence(prob.max(-1), small), float(lesion.mean()))


def _resize(arr: np.ndarray, interpolation: int) -> np.ndarray:
    """(h, w, C) -> (GRID, GRID, C), channel by channel (OpenCV resizes at most 4 channels at once)."""
    import cv2

    return np.dstack([cv2.resize(np.ascontiguousarray(arr[..., c]), (GRID, GRID), interpolation=interpolation)
                      for c in range(arr.shape[-1])])


def _confidence(top: np.ndarray, lesion: np.ndarray) -> float:
    """On the GRID: mean top-class probability over the lesion dilated by 2 cells, x framing."""
    from scipy import ndimage as ndi

    if lesion.sum() < 2:
        return 0.0
    band = ndi.binary_dilation(lesion, iterations=2)
    border = np.concatenate([lesion[0], lesion[-1], lesion[:, 0], lesion[:, -1]])
    return round(float(top[band].mean() * (1.0 - border.mean())), 4)
