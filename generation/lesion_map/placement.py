"""Lesion placement (method section 2): cut a donor's lesion, find every offset where it fits a base's skin, composite.

The rule, exactly: the *support* of the placed lesion (every pixel whose feathered alpha can change
a uint8 value) must lie inside the base's skin | lesion | marker region, at least `pad` pixels
(chessboard distance) from any other label and from the image border. All valid top-left offsets
are found at once, exactly: by a bit-parallel erosion with the footprint's column runs,
or by FFT-correlating the footprint with the forbidden map where that is cheaper (fragmented
footprints); `naive_valid_offsets` is the original research code's Python loop over candidate
corners, kept as the reference the benchmark and the tests compare against.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from builder.core.errors import PlacementError  # noqa: F401 (callers import it from here too)
from builder.core.schema import LABEL_LESION, LABEL_MARKER, LABEL_SKIN
from generation.fit import bbox as _bbox, valid_offsets  # noqa: F401 (valid_offsets: part of this module's API)

# Where a lesion may land: skin, the base's former lesion (inpainted to skin) and surgical ink.
ALLOWED_LABELS = (LABEL_SKIN, LABEL_LESION, LABEL_MARKER)
# Alpha below this cannot move a uint8 value by 0.5 (255 * 1/512 < 0.5), so it is cut to 0:
# the support is then exactly the set of pixels the composite may change.
ALPHA_EPS = 1.0 / 512
_BELOW_EPS = float(np.nextafter(ALPHA_EPS, 0.0))


@dataclasses.dataclass(frozen=True)
class LesionPatch:
    """A donor lesion cut out (and rotated): pixels, feathered alpha, lesion label and support."""

    rgb: np.ndarray      # (h, w, 3) float64 donor pixels (integer values)
    alpha: np.ndarray    # (h, w) float64 in [0, 1], multiples of 2^-2n; 0 outside `support`
    lesion: np.ndarray   # (h, w) bool, the (dilated) lesion: label 1 in the output map
    support: np.ndarray  # (h, w) bool, alpha > 0: the footprint that must fit inside skin
    origin: tuple[int, int] = (0, 0)  # (y, x) of the patch's top-left in the donor: where it lay there
    scale: float = 1.0   # lesion scale relative to the (resized) donor
    skin_lab: tuple | None = None  # the donor's skin around the lesion, median CIE Lab (None: no skin there)


@dataclasses.dataclass(frozen=True)
class Mapped:
    """A mapped image, its new label map and the placement that made it."""

    rgb: np.ndarray
    label_map: np.ndarray
    pad: int
    offset: tuple[int, int]  # (y, x) of the patch's top-left corner in the base
    angle: float
    patch_hw: tuple[int, int]
    placement: str = "fit"   # one of PLACEMENTS (builder.core.schema): how the position was found
    scale: float = 1.0       # lesion scale used (< 1: the downscale fallback)
    lesion: np.ndarray | None = None  # bool, the image's size: the placed lesion's footprint (label 1 it added)


def allowed_region(label_map: np.ndarray) -> np.ndarray:
    """uint8 0/1: where a lesion may land (a lookup table: label maps are uint8 0-4)."""
    import cv2

    return cv2.LUT(np.ascontiguousarray(label_map, np.uint8), _ALLOWED_LUT)


_ALLOWED_LUT = np.isin(np.arange(256), ALLOWED_LABELS).astype(np.uint8)


def with_margin(allowed: np.ndarray, pad: int) -> np.ndarray:
    """Pixels whose whole (2 pad + 1) square neighbourhood is allowed; outside the image is not."""
    import cv2

    if pad == 0:
        return allowed
    return cv2.erode(allowed, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8),
                     borderType=cv2.BORDER_CONSTANT, borderValue=0)


def cut_patch(rgb: np.ndarray, label_map: np.ndarray, angle: float, dilate_px: int,
              feather: float, scale: float = 1.0, exclude: np.ndarray | None = None) -> LesionPatch:
    """The donor's lesion (label 1), rotated by `angle` degrees about its centroid (and scaled), dilated, feathered.

    `exclude` (bool, the donor's size): pixels that must never enter the base (a drape inside the lesion's
    mask): alpha 0 there, after dilation and feathering."""
    import cv2

    les_full = cv2.compare(np.ascontiguousarray(label_map, np.uint8), LABEL_LESION, cv2.CMP_EQ)  # 0/255
    bx, by, bw, bh = cv2.boundingRect(les_full)
    if bw == 0:
        raise PlacementError("donor_has_no_lesion", "the donor's label map has no lesion pixels (label 1)")
    ys, xs = np.nonzero(les_full[by:by + bh, bx:bx + bw])
    ys, xs = ys + by, xs + bx
    # An integer centre makes angle 0 a pure integer shift: an exact copy of donor pixels.
    cy, cx = int(round(float(ys.mean()))), int(round(float(xs.mean())))
    kernel = feather_kernel(feather)
    r_feather = kernel.size // 2
    reach = math.sqrt(float(((ys - cy) ** 2 + (xs - cx) ** 2).max())) * scale
    half = int(math.ceil(reach)) + dilate_px + r_feather + 2  # room for rotation, dilation and feather
    side = 2 * half + 1
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(scale))
    m[:, 2] += (half - cx, half - cy)
    pix = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    les = cv2.warpAffine(les_full, m, (side, side),
                         flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if dilate_px > 0:  # the method's 3x3 dilation, `dilate_px` times
        les = cv2.dilate(les, np.ones((3, 3), np.uint8), iterations=dilate_px)
    les = cv2.threshold(les, 0, 1, cv2.THRESH_BINARY)[1]
    gone = None
    if exclude is not None and exclude.any():
        gone = cv2.warpAffine(exclude.astype(np.uint8), m, (side, side), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
        les[gone] = 0
    alpha = les.astype(np.float64)
    if kernel.size > 1:
        # Integer weights summed in float64 are exact whatever the summation order, and the
        # scale is a power of two: alpha, and so every output byte, is the same on any machine.
        alpha = cv2.sepFilter2D(alpha, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT)
        alpha *= 1.0 / float(kernel.sum()) ** 2
        # alpha < ALPHA_EPS -> 0: to-zero keeps values above the largest double below the cut.
        cv2.threshold(alpha, _BELOW_EPS, 0, cv2.THRESH_TOZERO, dst=alpha)
    if gone is not None:
        alpha[gone] = 0.0
    support = alpha > 0
    if not support.any():
        raise PlacementError("donor_has_no_lesion", "every lesion pixel of the donor has a drape or background colour")
    y0, x0, sh, sw = _bbox(support.view(np.uint8))
    crop = np.s_[y0:y0 + sh, x0:x0 + sw]
    return LesionPatch(rgb=pix[crop].astype(np.float64), alpha=alpha[crop], lesion=les[crop] > 0,
                       support=support[crop], origin=(cy - half + y0, cx - half + x0), scale=float(scale),
                       skin_lab=donor_skin(rgb, label_map, les_full > 0))


def donor_skin(rgb: np.ndarray, label_map: np.ndarray, lesion: np.ndarray) -> tuple | None:
    """Median CIE Lab of the donor's skin (label 4) in a band 3 to 3 + 3% of the longer side px around the
    lesion (all its skin when the band has under 50 pixels; None without skin): the colour the lesion
    is seen against, away from the lesion's own rim."""
    import cv2

    from builder.core.colour import rgb_to_lab

    reach = 3 + max(3, round(0.03 * max(lesion.shape)))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)
    near = cv2.dilate(lesion.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    skin = label_map == LABEL_SKIN
    band = (cv2.dilate(lesion.astype(np.uint8), k) > 0) & ~near & skin
    pick = band if np.count_nonzero(band) >= 50 else skin
    if not pick.any():
        return None
    return tuple(float(v) for v in np.median(rgb_to_lab(rgb[pick]), axis=0))


def feather_kernel(feather: float) -> np.ndarray:
    """Binomial weights approximating a Gaussian of sigma `feather` px (order n = 2 round(2 sigma^2),
    variance n / 4); [1] when feather is 0. Integers, summing to 2^n."""
    n = 2 * max(1, int(round(2 * feather * feather))) if feather > 0 else 0
    return np.array([math.comb(n, k) for k in range(n + 1)], np.float64)


def naive_valid_offsets(label_map: np.ndarray, support: np.ndarray, pad: int) -> np.ndarray:
    """Reference, as the original research code did it: erode the skin region by `pad`, take the
    bounding box of what is left, then loop over its candidate corners in Python (slow)."""
    eroded = with_margin(allowed_region(label_map), pad)
    y0, x0, bh, bw = _bbox(eroded)
    eroded = eroded.astype(bool)
    h, w = support.shape
    out = np.zeros((max(label_map.shape[0] - h + 1, 0), max(label_map.shape[1] - w + 1, 0)), bool)
    for y in range(y0, y0 + bh - h + 1):
        for x in range(x0, x0 + bw - w + 1):
            out[y, x] = eroded[y:y + h, x:x + w][support].all()
    return out


def choose_offset(valid: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A uniformly random valid offset (row-major order, so the same seed picks the same one)."""
    import cv2

    total = cv2.countNonZero(valid.view(np.uint8))
    if total == 0:
        return None
    k = int(rng.integers(total))  # the k-th valid offset in row-major order, found row by row
    ends = np.cumsum(cv2.reduce(valid.view(np.uint8), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())
    y = int(np.searchsorted(ends, k, side="right"))
    x = int(np.flatnonzero(valid[y])[k - (int(ends[y - 1]) if y else 0)])
    return y, x


def composite(base_rgb: np.ndarray, base_map: np.ndarray, patch: LesionPatch,
              offset: tuple[int, int], blend: str = "alpha") -> tuple[np.ndarray, np.ndarray]:
    """Blend the patch in at `offset` (clipped to the image); the output map gets label 1 on the placed lesion."""
    from generation.lesion_map.blend import GRADIENT_BLENDS, blend_window

    patch, (y, x) = clip_patch(patch, offset, base_map.shape)
    h, w = patch.alpha.shape
    rgb = base_rgb.copy()
    window = rgb[y:y + h, x:x + w]
    region = window.astype(np.float64)
    context = None
    if blend in GRADIENT_BLENDS:  # the window grown by one pixel: the boundary the membrane is pinned to
        t, lft = min(1, y), min(1, x)
        ctx = base_rgb[y - t:y + h + 1, x - lft:x + w + 1].astype(np.float64)
        context = (ctx, (t, lft))
    window[...] = blend_window(region, patch.rgb, patch.alpha, blend, context,  # integral: the cast is exact
                               patch.skin_lab)
    label_map = base_map.copy()
    label_map[y:y + h, x:x + w][patch.lesion] = LABEL_LESION
    return rgb, label_map


def clip_patch(patch: LesionPatch, offset: tuple[int, int], shape: tuple[int, ...]) -> tuple[LesionPatch, tuple]:
    """The part of the patch that lies inside an image of `shape` at `offset`, and its clipped offset."""
    y, x = offset
    h, w = patch.alpha.shape
    y0, x0 = max(0, -y), max(0, -x)
    y1, x1 = min(h, shape[0] - y), min(w, shape[1] - x)
    if (y0, x0, y1, x1) == (0, 0, h, w):
        return patch, (y, x)
    if y1 <= y0 or x1 <= x0:
        raise PlacementError("lesion_outside_base", f"a {h}x{w} lesion kept in place at {offset} lies outside "
                                                    f"the {shape[0]}x{shape[1]} base")
    crop = np.s_[y0:y1, x0:x1]
    return (dataclasses.replace(patch, rgb=patch.rgb[crop], alpha=patch.alpha[crop], lesion=patch.lesion[crop],
                                support=patch.support[crop]), (y + y0, x + x0))


DONOR_RESIZES = ("none", "base_short_side")


def fit_donor(rgb: np.ndarray, label_map: np.ndarray, base_hw: tuple[int, int],
              mode: str = "base_short_side") -> tuple[np.ndarray, np.ndarray, float]:
    """The donor at the base's scale: `none` keeps its pixels (the method), `base_short_side` resizes
    it by one factor matching shorter sides (aspect kept)."""
    import cv2

    if mode not in DONOR_RESIZES:
        raise ValueError(f"donor_resize={mode!r}: expected one of {DONOR_RESIZES}")
    scale = min(base_hw) / min(label_map.shape) if mode == "base_short_side" else 1.0
    if scale == 1.0:
        return rgb, label_map, scale
    h, w = (max(1, int(round(s * scale))) for s in label_map.shape)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return (cv2.resize(rgb, (w, h), interpolation=interp),
            cv2.resize(label_map, (w, h), interpolation=cv2.INTER_NEAREST), scale)


class DonorCuts:
    """One donor's lesion patches, cut once per (base shape, scale) and reused across pads and bases."""

    def __init__(self, rgb: np.ndarray, label_map: np.ndarray, angle: float, dilate_px: int, feather: float,
                 donor_resize: str, exclude: np.ndarray | None = None):
        self.rgb, self.label_map, self.angle, self.exclude = rgb, label_map, angle, exclude
        self.dilate_px, self.feather, self.donor_resize = dilate_px, feather, donor_resize
        self._cache: dict = {}

    def get(self, base_hw: tuple[int, int], scale: float) -> LesionPatch:
        key = (tuple(base_hw) if self.donor_resize != "none" else None, scale)
        if key not in self._cache:
            rgb, lm, _ = fit_donor(self.rgb, self.label_map, base_hw, self.donor_resize)
            excl = self.exclude
            if excl is not None and lm.shape != excl.shape:
                import cv2

                excl = cv2.resize(excl.astype(np.uint8), lm.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
            self._cache[key] = cut_patch(rgb, lm, self.angle, self.dilate_px, self.feather, scale, excl)
        return self._cache[key]


def search(base_map: np.ndarray, cuts: DonorCuts, scales: tuple[float, ...], pads: tuple[int, ...],
           rng: np.random.Generator, max_share: float | None = None) -> tuple[LesionPatch, int, tuple[int, int]] | None:
    """First (scale, pad) in order with a valid offset on this base: (patch, pad, offset), or None.

    `max_share`: scales whose lesion would cover more than this share of the base's skin are skipped."""
    import cv2

    allowed = allowed_region(base_map)
    room = cv2.countNonZero(allowed)
    if not room:
        return None
    margins: dict[int, np.ndarray] = {}
    for scale in scales:
        patch = cuts.get(base_map.shape, scale)
        if max_share is not None and np.count_nonzero(patch.lesion) > max_share * room:
            continue
        for pad in pads:
            if pad not in margins:
                margins[pad] = with_margin(allowed, pad)
            offset = choose_offset(valid_offsets(margins[pad], patch.support), rng)
            if offset is not None:
                return patch, int(pad), offset
    return None


def map_lesion(base_rgb: np.ndarray, base_map: np.ndarray, donor_rgb: np.ndarray, donor_map: np.ndarray,
               *, pads: tuple[int, ...], rotate: bool, dilate_px: int, feather: float, seed: int,
               scales: tuple[float, ...] = (1.0,), keep_in_place: bool = False, blend: str = "alpha",
               donor_resize: str = "base_short_side") -> Mapped:
    """Move the donor's lesion onto the base: first (scale, pad) in order with a valid offset wins.

    Steps: 1. draw the angle from the pair's seed; 2. cut the patch (per scale); 3. find valid offsets
    per pad (one margin erosion and one exact search per pad tried); 4. draw an offset; 5. blend.
    If nothing fits and `keep_in_place`, the lesion goes where it lay in the donor (the original
    method's last resort), clipped to the base. Raises PlacementError (`base_has_no_skin`,
    `donor_has_no_lesion`, `no_placement_fits`).
    """
    import cv2

    check_pair(base_rgb, base_map, donor_rgb, donor_map)
    rng = np.random.default_rng(seed)
    from generation.lesion_map.blend import donor_exclude

    cuts = DonorCuts(donor_rgb, donor_map, draw_angle(rng, rotate), dilate_px, feather, donor_resize,
                     donor_exclude(donor_rgb, donor_map, blend))
    if not cv2.countNonZero(allowed_region(base_map)):
        raise PlacementError("base_has_no_skin", "the base's label map has no skin, lesion or marker pixels")
    found = search(base_map, cuts, scales, pads, rng)
    if found is not None:
        patch, pad, offset = found
        return place(base_rgb, base_map, patch, offset, pad, cuts.angle, "fit" if patch.scale == 1 else "downscaled",
                     blend)
    if keep_in_place:
        return keep(base_rgb, base_map, cuts, blend)
    raise no_fit(cuts.get(base_map.shape, 1.0), pads, scales)


def draw_angle(rng: np.random.Generator, rotate: bool) -> float:
    # Rounded so the recorded angle reproduces the image exactly.
    return round(float(rng.uniform(0.0, 360.0)), 3) if rotate else 0.0


def place(base_rgb, base_map, patch: LesionPatch, offset, pad: int | None, angle: float, placement: str,
          blend: str) -> Mapped:
    rgb, label_map = composite(base_rgb, base_map, patch, offset, blend)
    clipped, (y, x) = clip_patch(patch, offset, base_map.shape)
    lesion = np.zeros(base_map.shape, bool)
    lesion[y:y + clipped.lesion.shape[0], x:x + clipped.lesion.shape[1]] = clipped.lesion
    return Mapped(rgb, label_map, -1 if pad is None else int(pad), tuple(int(v) for v in offset), angle,
                  patch.support.shape, placement, patch.scale, lesion)


def keep(base_rgb, base_map, cuts: DonorCuts, blend: str) -> Mapped:
    """The method's last resort: the full-size lesion where it lay in the donor.

    On a base smaller than the donor, the position is moved the least that brings the patch inside
    the base (clipped where the patch is larger than the base), so it is never lost.
    """
    patch = cuts.get(base_map.shape, 1.0)
    (y, x), (h, w) = patch.origin, patch.alpha.shape
    offset = (min(max(y, 0), max(base_map.shape[0] - h, 0)), min(max(x, 0), max(base_map.shape[1] - w, 0)))
    return place(base_rgb, base_map, patch, offset, None, cuts.angle, "kept_in_place", blend)


def skin_share(label_map: np.ndarray, lesion: np.ndarray | int) -> float:
    """A lesion's pixel count (or a bool mask's) over the base's skin | lesion | marker pixels."""
    room = int(np.count_nonzero(allowed_region(label_map)))
    n = int(lesion if isinstance(lesion, (int, np.integer)) else np.count_nonzero(lesion))
    return n / room if room else float("inf")


def no_fit(patch: LesionPatch, pads, scales) -> PlacementError:
    smallest = f" down to scale {min(scales)}" if len(scales) > 1 else ""
    return PlacementError("no_placement_fits",
                          f"a {patch.support.shape[0]}x{patch.support.shape[1]} lesion footprint{smallest} fits "
                          f"nowhere inside the base's skin region with any pad of {list(pads)}")


def check_pair(base_rgb: np.ndarray, base_map: np.ndarray, donor_rgb: np.ndarray, donor_map: np.ndarray) -> None:
    for name, rgb, lm in (("base", base_rgb, base_map), ("donor", donor_rgb, donor_map)):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise PlacementError(f"{name}_image_not_rgb", f"{name} image has shape {rgb.shape} dtype "
                                                          f"{rgb.dtype}; expected (H, W, 3) uint8")
        if lm.shape != rgb.shape[:2]:
            raise PlacementError(f"{name}_mask_size_mismatch", f"{name} label map is {lm.shape}, its "
                                                               f"image {rgb.shape[:2]}; they must match")
