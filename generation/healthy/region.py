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


RIM_Z = (2.5, 2.0)  # a rim is seeded where a colour is this many spreads (MAD) of the skin beyond it away from
#                     that skin, and grows through pixels at least the second many away (hysteresis)
RIM_REF = (2, 4)    # the skin beyond: from 2 to 4 rim widths from the region
RIM_MIN_REF = 200   # px of skin beyond the rim needed to tell a rim at all
RIM_RETURN = 0.5    # a rim's colour ends within a rim width: the skin just past it deviates under half as much


def inpaint_region(label_map: np.ndarray, *, include_marker: bool, dilate_px: int,
                   feather_px: int, rim_px: int = 0, rgb: np.ndarray | None = None) -> Region | None:
    """The region to inpaint: lesion (and marker ink), dilated into skin, and with `rim_px` > 0 grown over
    the lesion's perilesional rim (`perilesional_rim`, read from `rgb`); None when it is empty.

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
    if rim_px > 0:
        if rgb is None or rgb.shape[:2] != label_map.shape:
            raise ValueError(f"rim_px={rim_px} reads the photo: pass its RGB pixels (rgb=) of the label map's "
                             f"size {label_map.shape}")
        rim = perilesional_rim(rgb, mask, (label_map == LABEL_SKIN) & ~mask, rim_px)
        if rim.any() and feather_px > 0:  # the feather's ramp then lies on skin beyond the rim, not on it
            import cv2

            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * feather_px + 3, 2 * feather_px + 3))
            rim = cv2.dilate(rim.astype(np.uint8), k).astype(bool) & (label_map == LABEL_SKIN)
        mask = mask | rim
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    alpha = feather_alpha(mask, feather_px)
    # The lesion itself is always fully replaced: where it touches background (no ring to
    # feather over) a ramp would leave a ghost of the lesion.
    alpha[target] = 1.0
    return Region(mask=mask, alpha=alpha, box=box)


def perilesional_rim(rgb: np.ndarray, mask: np.ndarray, skin: np.ndarray, px: int) -> np.ndarray:
    """Skin within `px` of the region whose colour is not that of the skin beyond it, connected to the
    region: a raised lesion's shadow, a pale collar, an erythematous halo the hand mask left outside.
    Healed without it, it stays as a ring round the healed patch (the "ghost" a classifier can learn).

    The skin beyond is the skin RIM_REF[0] to RIM_REF[1] rim widths out, walking over skin (the other leg
    across a gap is not the skin beyond this one's lesion); its local mean (a Gaussian of
    two rim widths over that band only, carried inwards to the nearest) keeps a limb's shading out of
    the comparison. A pixel (CIE L*a*b*, lightly blurred) is off when some channel is more than RIM_Z[0]
    times that band's own spread (MAD, at least one level) from the mean; a 3x3 opening drops hair-thin
    strands; those touching the region seed the rim, which grows through pixels off by RIM_Z[1] (a rim
    crossing a paler mottle stays one rim). None within a rim width of non-skin (a limb's outline, a
    drape: shading there changes faster than the local mean, and a heal reaching it reads the dark edge),
    and only the parts past which the skin returns to its colour within a rim width (`_returns`). Empty
    when the band holds under RIM_MIN_REF pixels."""
    import cv2
    from scipy.ndimage import distance_transform_edt, label

    from generation.healthy.artefacts import lab
    from generation.healthy.exemplar import local_mean
    from generation.healthy.quilt import nearest_fill

    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    m = int(RIM_REF[1] * px + 6 * px)  # the band and its blur
    y0, y1, x0, x1 = max(0, ys.min() - m), min(h, ys.max() + m + 1), max(0, xs.min() - m), min(w, xs.max() + m + 1)
    hole, known = mask[y0:y1, x0:x1], skin[y0:y1, x0:x1]
    d = _skin_distance(hole, known, RIM_REF[1] * px)
    ref = known & (d > RIM_REF[0] * px) & (d <= RIM_REF[1] * px)
    out = np.zeros_like(mask)
    if ref.sum() < RIM_MIN_REF:
        return out
    # lightly blurred over skin only: the lesion's own colour must not bleed into the pixels beside it
    blurred = local_mean(rgb[y0:y1, x0:x1].astype(np.float64), known, 1.5)
    colour = lab(np.clip(np.rint(blurred), 0, 255).astype(np.uint8)).astype(np.float64)
    covered = cv2.GaussianBlur(ref.astype(np.float64), (0, 0), 2.0 * px) > 1e-3
    mean = nearest_fill(local_mean(colour, ref, 2.0 * px), covered)
    resid = colour[ref] - mean[ref]
    spread = np.maximum(1.4826 * np.median(np.abs(resid - np.median(resid, axis=0)), axis=0), 1.0)
    # a limb's outline darkens faster than the local mean follows: no rim within a rim width of non-skin
    inside = distance_transform_edt(known | hole) > px
    z = np.where(known & inside & (d <= px), (np.abs(colour - mean) / spread).max(axis=-1), 0.0)
    seed = cv2.morphologyEx((z > RIM_Z[0]).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    parts, _ = label(seed | hole)  # seeds touching the region ...
    touching = np.unique(parts[hole])
    seed &= np.isin(parts, touching[touching > 0])
    weak = cv2.morphologyEx((z > RIM_Z[1]).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)
    parts, _ = label(weak | seed | hole)  # ... and what joins them through weaker deviation
    keep = np.unique(parts[seed])
    rim = (weak | seed) & np.isin(parts, keep[keep > 0]) & ~hole
    out[y0:y1, x0:x1] = _returns(rim, (colour - mean) / spread, known & (d > px) & (d <= 2 * px), px)
    return out


def _returns(rim: np.ndarray, z: np.ndarray, beyond: np.ndarray, px: int) -> np.ndarray:
    """The parts of `rim` beyond which the skin returns to the skin's colour: the skin within `px` outside a
    part (`beyond`) deviates, along the part's own mean deviation `z`, by under RIM_RETURN of it. Shading or
    a colour field that goes on past the rim width is no rim; a part with no skin beyond it is not judged
    one."""
    import cv2
    from scipy.ndimage import find_objects, label

    parts, _ = label(rim)
    keep = np.zeros_like(rim)
    for k, box in enumerate(find_objects(parts), start=1):
        ys = slice(max(0, box[0].start - px), box[0].stop + px)
        xs = slice(max(0, box[1].start - px), box[1].stop + px)
        part = parts[ys, xs] == k
        near = cv2.dilate(part.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)
        out_skin = near & beyond[ys, xs]
        if out_skin.sum() < 10:
            continue
        own = z[ys, xs][part].mean(axis=0)
        size = float(np.linalg.norm(own))
        if size > 0 and float(z[ys, xs][out_skin].mean(axis=0) @ own) / size < RIM_RETURN * size:
            keep[ys, xs] |= part
    return keep


def _skin_distance(hole: np.ndarray, known: np.ndarray, limit: int) -> np.ndarray:
    """Distance (px) from `hole` walking over `known` only (steps alternating 4- and 8-neighbours: close to
    Euclidean); inf beyond `limit` or where skin does not lead."""
    import cv2

    d = np.full(hole.shape, np.inf)
    d[hole] = 0.0
    cur, walk = hole.astype(np.uint8), (known | hole).astype(np.uint8)
    cross, square = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), np.ones((3, 3), np.uint8)
    for i in range(1, limit + 1):
        nxt = cv2.dilate(cur, cross if i % 2 else square) & walk
        d[(nxt > 0) & (cur == 0)] = i
        cur = nxt
    return d


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
