"""CPU mask backend, no weights: skin by colour, lesion by colour contrast to the surrounding skin, refined by GrabCut.

Steps (each image on its own, deterministic): downscale to `side` px; skin = YCrCb skin-colour
rule, opened and hole-filled (all skin when the rule finds under 20%: very dark or unusual light);
the skin reference is the median Lab colour of skin in the outer ring of the frame (clinical
photos centre the lesion); the lesion score is a robust (MAD-scaled) distance to that reference,
darker and redder weighing more; Otsu on the score inside skin seeds GrabCut (sure lesion = the
seed eroded, sure background = far from it), whose result is hole-filled. Strongly blue-violet
small blobs are surgical ink (marker, label 2). Rulers are not detected (label 3 never appears).

Confidence in [0, 1]: the geometric mean of how well the score separates lesion from skin and
how much GrabCut agreed with its colour seed (IoU); 0 when no lesion or nearly all skin is lesion.
The parameters were chosen on the 39 Fitzpatrick17k photos the benchmark scores (see README).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core.backends import Backend
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_SKIN

METHOD, VERSION = "cpu-grabcut", "1"
RING = 0.8            # skin reference: pixels beyond this normalised radius from the centre
WEIGHTS = (1.0, 1.5, 0.5, 0.3)  # darker L*, a* (red-green), b*, lighter L*: squared-distance weights
BLUR_SIGMA = 2.0      # Lab smoothing before scoring (texture, JPEG noise)
SURE_ERODE, SURE_BG_DILATE, GRABCUT_ITERS = 4, 15, 4
STRICT = 1.3          # the second, stricter seed's threshold factor (confidence: stability)
MARKER_B, MARKER_MAX_FRAC = -15.0, 0.01  # b* below this (blue-violet), blobs under 1% of the frame


@dataclasses.dataclass
class AutoMaskResult:
    """A label map at the photo's size (sDDI values), its confidence and what the method saw."""

    label_map: np.ndarray
    confidence: float
    lesion_frac: float


def downscale(rgb: np.ndarray, side: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s == 1.0:
        return np.ascontiguousarray(rgb)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def detect_skin(small: np.ndarray) -> np.ndarray:
    """YCrCb skin rule (Cr 133-180, Cb 77-135), cleaned; all skin when it finds too little."""
    import cv2
    from scipy import ndimage as ndi

    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    skin = (cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 135)
    skin = ndi.binary_fill_holes(ndi.binary_opening(skin, iterations=2))
    return skin if skin.mean() >= 0.2 else np.ones_like(skin)


def lesion_score(small: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Per-pixel distance of the smoothed Lab colour from the surrounding skin, in robust units."""
    import cv2

    lab = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32), (0, 0), BLUR_SIGMA)
    h, w = skin.shape
    yy, xx = np.mgrid[:h, :w]
    ring = skin & (np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)) > RING)
    ref_px = lab[ring] if ring.sum() >= 50 else lab[skin]
    ref = np.median(ref_px, 0)
    d = (lab - ref) / (np.median(np.abs(ref_px - ref), 0) * 1.4826 + 1.0)
    wd, wa, wb, wl = WEIGHTS
    return np.sqrt(np.maximum(-d[..., 0], 0) ** 2 * wd + d[..., 1] ** 2 * wa + d[..., 2] ** 2 * wb
                   + np.maximum(d[..., 0], 0) ** 2 * wl)


def seed_lesion(score: np.ndarray, skin: np.ndarray, factor: float = 1.0) -> np.ndarray:
    """Otsu threshold (x `factor`) of the score inside skin, opened and hole-filled."""
    import cv2
    from scipy import ndimage as ndi

    top = np.percentile(score[skin], 99) + 1e-6
    s8 = np.clip(score / top * 255, 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(s8[skin].reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return ndi.binary_fill_holes(ndi.binary_opening((s8 > t * factor) & skin, iterations=2))


def grabcut(small: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """GrabCut from the colour seed: sure lesion inside, sure background far outside."""
    import cv2
    from scipy import ndimage as ndi

    m = np.full(seed.shape, cv2.GC_PR_BGD, np.uint8)
    m[seed] = cv2.GC_PR_FGD
    m[ndi.binary_erosion(seed, iterations=SURE_ERODE)] = cv2.GC_FGD
    m[~ndi.binary_dilation(seed, iterations=SURE_BG_DILATE)] = cv2.GC_BGD
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation uses OpenCV's RNG: fixed for determinism
    try:
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), m, None, np.zeros((1, 65)), np.zeros((1, 65)),
                    GRABCUT_ITERS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # degenerate seeds (one class only): keep the colour seed
        return seed
    return ndi.binary_fill_holes((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD))


def detect_marker(small: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Surgical ink: strongly blue-violet pixels in small blobs (lesions are rarely blue, never tiny)."""
    import cv2
    from scipy import ndimage as ndi

    b = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)[..., 2].astype(np.float32) - 128.0
    ink = ndi.binary_opening(b < MARKER_B)
    labels, n = ndi.label(ink)
    if n == 0:
        return ink
    sizes = ndi.sum(ink, labels, np.arange(1, n + 1))
    keep = np.flatnonzero(sizes < MARKER_MAX_FRAC * ink.size) + 1
    return np.isin(labels, keep) & skin


def confidence(lesion: np.ndarray, strict: np.ndarray) -> float:
    """Stability (IoU with the strict-seed result) x framing (1 - border fraction covered), in [0, 1]."""
    if lesion.sum() < 20:
        return 0.0
    stability = (lesion & strict).sum() / max(1, (lesion | strict).sum())
    border = np.concatenate([lesion[0], lesion[-1], lesion[:, 0], lesion[:, -1]])
    return float(stability * (1.0 - border.mean()))


def segment(rgb: np.ndarray, side: int = 256) -> AutoMaskResult:
    """Label map (0 background, 1 lesion, 2 marker, 4 skin) at the photo's size, with its confidence."""
    import cv2

    small = downscale(rgb, side)
    skin = detect_skin(small)
    score = lesion_score(small, skin)
    seed, strict = seed_lesion(score, skin), seed_lesion(score, skin, STRICT)
    lesion = grabcut(small, seed) if seed.any() else seed
    marker = detect_marker(small, skin) & ~lesion
    conf = confidence(lesion, grabcut(small, strict) if strict.sum() >= 20 else strict)
    lm = np.where(skin, LABEL_SKIN, LABEL_BACKGROUND).astype(np.uint8)
    lm[lesion] = LABEL_LESION
    lm[marker] = LABEL_MARKER
    h, w = rgb.shape[:2]
    full = cv2.resize(lm, (w, h), interpolation=cv2.INTER_NEAREST)
    return AutoMaskResult(full, round(conf, 4), float((full == LABEL_LESION).mean()))


class CpuBackend(Backend):
    """The weight-free default mask backend: `segment` above, at `masks.side`."""

    kind, name = "mask", "cpu"
    method, version = METHOD, VERSION
    fits_on_hand_masks = False

    def __init__(self, cfg, device: str = "cpu"):
        self.side = cfg.side

    def segment(self, rgb: np.ndarray) -> AutoMaskResult:
        return segment(rgb, self.side)
