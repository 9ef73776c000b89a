"""Inpaint regions: which pixels a healthy synthetic may change, their feathered alpha, and the composite.

The pixel guarantee of cgDDI section 1 ("without disturbing other input properties") lives here:
`composite` copies every pixel outside the hard region from the input, whatever a backend returned.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from builder.core.schema import LABEL_LESION, LABEL_MARKER, LABEL_SKIN


@dataclasses.dataclass(frozen=True)
class Region:
    """A hard inpaint mask, its feathered alpha (zero outside the mask) and its bounding box."""

    mask: np.ndarray   # bool (H, W): pixels the backend may change
    alpha: np.ndarray  # float32 (H, W) in [0, 1]; 0 wherever `mask` is False
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of `mask`

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


def inpaint_region(label_map: np.ndarray, *, include_marker: bool, dilate_px: int,
                   feather_px: int) -> Region | None:
    """The region to inpaint: lesion (and marker ink), dilated into skin; None when it is empty.

    The alpha is 1 on the lesion and ramps down over the dilated ring, so the seam with the
    untouched skin is soft.

    Dilation grows only into skin (label 4): it exists to cover a lesion's halo, and growing into
    background or a ruler would paint skin over them and break the new label map's non-skin parts.
    """
    target = label_map == LABEL_LESION
    if include_marker:
        target |= label_map == LABEL_MARKER
    if not target.any():
        return None
    mask = target
    if dilate_px > 0:
        import cv2

        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        grown = cv2.dilate(target.astype(np.uint8), k).astype(bool)
        mask = target | (grown & (label_map == LABEL_SKIN))
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    alpha = feather_alpha(mask, feather_px)
    # The lesion itself is always fully replaced: where it touches background (no ring to
    # feather over) a ramp would leave a ghost of the lesion.
    alpha[target] = 1.0
    return Region(mask=mask, alpha=alpha, box=box)


def feather_alpha(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """Alpha ramping from the region's edge inwards over `feather_px` pixels; exactly 0 outside.

    Feathering happens only inside the region (a blur would leak generated pixels outside it).
    """
    if feather_px <= 0:
        return mask.astype(np.float32)
    import cv2

    # Pad so the image border does not count as "outside": a lesion touching the frame edge
    # is still fully replaced there.
    padded = np.pad(mask.astype(np.uint8), 1, mode="edge")
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, 3)[1:-1, 1:-1]
    alpha = np.clip(dist / (feather_px + 1), 0.0, 1.0).astype(np.float32)
    alpha[~mask] = 0.0
    return alpha


def composite(original: np.ndarray, generated: np.ndarray, region: Region) -> np.ndarray:
    """Blend generated pixels in through the alpha, then restore every pixel outside the hard mask."""
    if generated.shape != original.shape:
        raise ValueError(f"generated image has shape {generated.shape}, input has {original.shape}")
    x0, y0, x1, y1 = region.box  # the region lies inside its box: blend there only (large photos)
    a = region.alpha[y0:y1, x0:x1, None]
    src, gen = original[y0:y1, x0:x1].astype(np.float32), generated[y0:y1, x0:x1].astype(np.float32)
    blended = np.clip(np.rint(src * (1.0 - a) + gen * a), 0, 255).astype(np.uint8)
    out = original.copy()
    inside = region.mask[y0:y1, x0:x1]
    out[y0:y1, x0:x1][inside] = blended[inside]  # outside the mask: the input, bit for bit
    return out


def healed_label_map(label_map: np.ndarray, region: Region) -> np.ndarray:
    """The new label map: the inpainted region is skin now (cgDDI: the lesion region counts as skin)."""
    out = label_map.astype(np.uint8, copy=True)
    out[region.mask] = LABEL_SKIN
    return out


def crop_window(box: tuple[int, int, int, int], height: int, width: int,
                size: int) -> tuple[int, int, int, int]:
    """A window of about `size` x `size` centred on `box`, grown to contain it, clamped to the image.

    Large photos are never downscaled as a whole: the model sees this window and the result is
    pasted back. Returns x0, y0, x1, y1.
    """
    x0, y0, x1, y1 = box
    side = max(size, x1 - x0, y1 - y0)
    wh, ww = min(height, side), min(width, side)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    wx0 = int(np.clip(cx - ww // 2, 0, width - ww))
    wy0 = int(np.clip(cy - wh // 2, 0, height - wh))
    return wx0, wy0, wx0 + ww, wy0 + wh
