"""Automatic review flags: measured defects a reviewer should look at first (the page sorts by them).

Each flag is a pure function of pixels and label maps, with a measured value and a threshold:

- healthy images: `lesion_remains` (the healed region still contrasts with the skin around it),
  `fill_off_colour` (fill colours far from every colour of the surrounding skin), `text_in_fill`
  (high-contrast thin strokes, e.g. a watermark copied into the fill);
- lesion maps: `paste_off_skin` (the pasted lesion lies over non-skin), `paste_covers_frame`;
- automatic masks: `mask_touches_frame`, `mask_covers_frame`, `mask_non_skin_colour`, `mask_text_like`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core.schema import LABEL_LESION, LABEL_SKIN

RING_PX = 15          # width of the skin ring around a region that the region is compared with
LESION_DELTA_E = 10.0  # lesion_remains: CIE76 distance between the medians of region and ring
OFF_COLOUR_DE = 20.0   # fill_off_colour: a fill pixel this far from every ring colour is off-colour ...
OFF_COLOUR_SHARE = 0.15  # ... and the flag fires when this share of the fill is
STROKE_CONTRAST = 60   # text: a thin stroke is this much brighter / darker than its 9x9 surroundings ...
STROKE_SHARE = 0.15    # ... and text fires when this share of the region is text-like strokes
OFF_SKIN_SHARE = 0.25  # paste_off_skin: share of the pasted lesion over non-skin
NON_SKIN_SHARE = 0.2   # mask_non_skin_colour: share of the mask in colours no skin or lesion has
COVERS_SHARE = 0.5     # *_covers_frame: share of the frame
BORDER_SHARE = 0.05    # mask_touches_frame: share of the frame's border pixels that are lesion


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    value: float
    threshold: float

    @property
    def fired(self) -> bool:
        return self.value > self.threshold

    def to_json(self) -> dict:
        return {"flag": self.name, "value": round(float(self.value), 4), "threshold": self.threshold,
                "fired": self.fired}


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* as float (L 0-100, a and b about -128..127)."""
    import cv2

    x = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    return np.stack([x[..., 0] * 100 / 255, x[..., 1] - 128, x[..., 2] - 128], axis=-1)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def non_skin_colour(rgb: np.ndarray) -> np.ndarray:
    """Pixels whose colour no skin or lesion has: near-white or near-black greys (paper, walls, bars,
    text), greens and cyans (a* < -3), blues (b* < -8 without the red of purple lesions)."""
    L = lab(rgb)
    chroma = np.hypot(L[..., 1], L[..., 2])
    grey = (chroma < 10) & ((L[..., 0] > 75) | (L[..., 0] < 15))
    return grey | (L[..., 1] < -3) | ((L[..., 2] < -8) & (L[..., 1] < 8))


def text_strokes(rgb: np.ndarray) -> np.ndarray:
    """Text-like pixels (watermarks, captions): thin strokes (white or black top-hat over a 9x9 square,
    contrast > STROKE_CONTRAST) that are grey and near-white or near-black; lesion scales and crusts,
    thin and bright too, keep some colour."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    thin = np.maximum(cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k), cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k))
    L = lab(rgb)
    grey = np.hypot(L[..., 1], L[..., 2]) < 12
    return (thin > STROKE_CONTRAST) & grey & ((L[..., 0] > 80) | (L[..., 0] < 20))


def ring(region: np.ndarray, skin: np.ndarray | None = None) -> np.ndarray:
    """The band of RING_PX around `region` (only skin pixels, given a skin mask)."""
    out = dilate(region, RING_PX) & ~region
    return out & skin if skin is not None and (out & skin).sum() > 50 else out


def healthy_flags(healthy: np.ndarray, region: np.ndarray, skin: np.ndarray | None = None) -> list[Flag]:
    """Flags of a healthy image whose `region` (bool, the inpainted pixels) was filled."""
    if not region.any():
        return []
    around = ring(region, skin)
    if not around.any():
        return []
    L = lab(healthy)
    inside, outside = L[region], L[around]
    contrast = float(np.linalg.norm(np.median(inside, axis=0) - np.median(outside, axis=0)))
    return [Flag("lesion_remains", contrast, LESION_DELTA_E),
            Flag("fill_off_colour", off_colour_share(inside, outside), OFF_COLOUR_SHARE),
            Flag("text_in_fill", float(text_strokes(healthy)[region].mean()), STROKE_SHARE)]


def off_colour_share(inside: np.ndarray, outside: np.ndarray, n: int = 1500) -> float:
    """Share of `inside` colours (Lab rows) farther than OFF_COLOUR_DE from every `outside` colour (sampled)."""
    rng = np.random.default_rng(0)
    a = inside[rng.choice(len(inside), min(n, len(inside)), replace=False)]
    b = outside[rng.choice(len(outside), min(n, len(outside)), replace=False)]
    nearest = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1)
    return float((nearest > OFF_COLOUR_DE).mean())


def lesion_map_flags(base: np.ndarray, base_labels: np.ndarray, mapped_labels: np.ndarray) -> list[Flag]:
    """Flags of a lesion map: where its pasted lesion (lesion now, not in the base) lies on the base."""
    pasted = (mapped_labels == LABEL_LESION) & (base_labels != LABEL_LESION)
    if not pasted.any():
        return []
    non_skin = (base_labels != LABEL_SKIN) | non_skin_colour(base)
    return [Flag("paste_off_skin", float(non_skin[pasted].mean()), OFF_SKIN_SHARE),
            Flag("paste_covers_frame", float(pasted.mean()), COVERS_SHARE)]


def mask_flags(photo: np.ndarray, labels: np.ndarray) -> list[Flag]:
    """Flags of an automatic mask (its lesion pixels) on its photo."""
    lesion = labels == LABEL_LESION
    if not lesion.any():
        return []
    border = np.concatenate([lesion[0], lesion[-1], lesion[1:-1, 0], lesion[1:-1, -1]])
    return [Flag("mask_touches_frame", float(border.mean()), BORDER_SHARE),
            Flag("mask_covers_frame", float(lesion.mean()), COVERS_SHARE),
            Flag("mask_non_skin_colour", float(non_skin_colour(photo)[lesion].mean()), NON_SKIN_SHARE),
            Flag("mask_text_like", text_like_part(photo, lesion), STROKE_SHARE)]


def text_like_part(photo: np.ndarray, region: np.ndarray, min_px: int = 20) -> float:
    """The largest share of text-like strokes in any one part of `region` (a connected component of at
    least `min_px` pixels, widened by 2 pixels to hold the strokes' edges): a mask that took a watermark
    beside a real lesion is caught by the watermark's part alone."""
    import cv2

    n, parts, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    text = text_strokes(photo)
    shares = [float(text[dilate(parts == k, 2)].mean()) for k in range(1, n)
              if stats[k, cv2.CC_STAT_AREA] >= min_px]
    return max(shares, default=0.0)


def fired(flags: list[Flag]) -> list[str]:
    return [f.name for f in flags if f.fired]
