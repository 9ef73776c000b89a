"""Automatic review flags: measured defects a reviewer should look at first (the page sorts by them).

Each flag is a pure function of pixels and label maps, with a measured value and a threshold:

- healthy images: `lesion_remains` (the healed region still contrasts with the skin around it),
  `fill_off_colour` (fill colours far from every colour of the surrounding skin), `text_in_fill`
  (high-contrast thin strokes, e.g. a watermark copied into the fill), and, given the photo, the fill
  artefact detectors of `generation.healthy.artefacts` (`copied_mark`, `foreign_colour`, `seam`,
  `tiling`, `flat_texture`: the same measures the fill benchmark scores and the build counts);
- lesion maps: `paste_off_skin` (the pasted lesion lies over non-skin), `paste_covers_frame`;
- automatic masks: `mask_touches_frame`, `mask_covers_frame`, `mask_non_skin_colour`, `mask_text_like`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core.schema import LABEL_LESION, LABEL_SKIN
from generation.healthy import artefacts
from generation.healthy.artefacts import dilate, lab, non_skin_colour, text_strokes  # noqa: F401 (this module's API)

RING_PX = 15          # width of the skin ring around a region that the region is compared with
LESION_DELTA_E = 10.0  # lesion_remains: CIE76 distance between the medians of region and ring
OFF_COLOUR_DE = 20.0   # fill_off_colour: a fill pixel this far from every ring colour is off-colour ...
OFF_COLOUR_SHARE = 0.15  # ... and the flag fires when this share of the fill is
STROKE_SHARE = 0.15    # text fires when this share of the region is text-like strokes (artefacts.text_strokes)
OFF_SKIN_SHARE = 0.25  # paste_off_skin: share of the pasted lesion over non-skin
NON_SKIN_SHARE = 0.2   # mask_non_skin_colour: share of the mask in colours no skin or lesion has
COVERS_SHARE = 0.5     # *_covers_frame: share of the frame
BORDER_SHARE = 0.05    # mask_touches_frame: share of the frame's border pixels that are lesion


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    value: float
    threshold: float
    below: bool = False  # fires below the threshold (a measure where less is worse)

    @property
    def fired(self) -> bool:
        return self.value < self.threshold if self.below else self.value > self.threshold

    def to_json(self) -> dict:
        out = {"flag": self.name, "value": round(float(self.value), 4), "threshold": self.threshold,
               "fired": self.fired}
        return {**out, "below": True} if self.below else out


def ring(region: np.ndarray, skin: np.ndarray | None = None) -> np.ndarray:
    """The band of RING_PX around `region` (only skin pixels, given a skin mask)."""
    out = dilate(region, RING_PX) & ~region
    return out & skin if skin is not None and (out & skin).sum() > 50 else out


def healthy_flags(healthy: np.ndarray, region: np.ndarray, skin: np.ndarray | None = None,
                  photo: np.ndarray | None = None) -> list[Flag]:
    """Flags of a healthy image whose `region` (bool, the inpainted pixels) was filled; with the `photo`
    it was healed from, the fill artefact detectors too."""
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
            Flag("text_in_fill", float(text_strokes(healthy)[region].mean()), STROKE_SHARE)] + \
        (artefact_flags(healthy, photo, region, skin) if photo is not None else [])


def artefact_flags(healthy: np.ndarray, photo: np.ndarray, region: np.ndarray, skin: np.ndarray | None) -> list[Flag]:
    """The fill artefact detectors (`generation.healthy.artefacts`) as flags."""
    values = artefacts.measure(healthy, photo, region, skin)
    return [Flag(k, v, artefacts.THRESHOLDS[k], below=k in artefacts.BELOW) for k, v in values.items()]


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
