"""Lesion placement (method section 2): cut a donor's lesion, find every offset where it fits a base's skin, composite.

The rule, exactly: the *support* of the placed lesion (every pixel whose feathered alpha can change
a uint8 value) must lie inside the base's skin | lesion | marker region, at least `pad` pixels
(chessboard distance) from any other label and from the image border. All valid top-left offsets
are found at once by FFT-correlating the footprint with the forbidden map (issue 4: exact and
vectorized); `naive_valid_offsets` is the original research code's Python loop over candidate
corners, kept as the reference the benchmark and the tests compare against.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from builder.schema import LABEL_LESION, LABEL_MARKER, LABEL_SKIN

# Where a lesion may land: skin, the base's former lesion (inpainted to skin) and surgical ink.
ALLOWED_LABELS = (LABEL_SKIN, LABEL_LESION, LABEL_MARKER)
# Alpha below this cannot move a uint8 value by 0.5 (255 * 1/512 < 0.5), so it is cut to 0:
# the support is then exactly the set of pixels the composite may change.
ALPHA_EPS = 1.0 / 512


class PlacementError(ValueError):
    """A pair that cannot be mapped; `reason` is the snake_case rejection reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class LesionPatch:
    """A donor lesion cut out (and rotated): pixels, feathered alpha, lesion label and support."""

    rgb: np.ndarray      # (h, w, 3) float32 donor pixels
    alpha: np.ndarray    # (h, w) float32 in [0, 1]; 0 outside `support`
    lesion: np.ndarray   # (h, w) bool, the (dilated) lesion: label 1 in the output map
    support: np.ndarray  # (h, w) bool, alpha > 0: the footprint that must fit inside skin


@dataclasses.dataclass(frozen=True)
class Mapped:
    """A mapped image, its new label map and the placement that made it."""

    rgb: np.ndarray
    label_map: np.ndarray
    pad: int
    offset: tuple[int, int]  # (y, x) of the patch's top-left corner in the base
    angle: float
    patch_hw: tuple[int, int]


def allowed_region(label_map: np.ndarray) -> np.ndarray:
    return np.isin(label_map, ALLOWED_LABELS)


def skin_distance(label_map: np.ndarray) -> np.ndarray:
    """Chessboard distance of each pixel to the nearest non-allowed pixel or the image border.

    A pixel with distance d has every pixel within d - 1 allowed, so "inside skin with margin pad"
    is exactly `distance > pad` (a (2 pad + 1) square erosion, computed once for every pad).
    """
    import cv2

    allowed = allowed_region(label_map).astype(np.uint8)
    framed = cv2.copyMakeBorder(allowed, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(framed, cv2.DIST_C, 3)[1:-1, 1:-1]


def cut_patch(rgb: np.ndarray, label_map: np.ndarray, angle: float, dilate_px: int,
              feather: float) -> LesionPatch:
    """The donor's lesion (label 1), rotated by `angle` degrees about its centroid, dilated, feathered."""
    import cv2

    ys, xs = np.nonzero(label_map == LABEL_LESION)
    if ys.size == 0:
        raise PlacementError("donor_has_no_lesion", "the donor's label map has no lesion pixels (label 1)")
    # An integer centre makes angle 0 a pure integer shift: an exact copy of donor pixels.
    cy, cx = int(round(float(ys.mean()))), int(round(float(xs.mean())))
    r_feather = int(math.ceil(3 * feather)) if feather > 0 else 0
    reach = math.sqrt(float(((ys - cy) ** 2 + (xs - cx) ** 2).max()))
    half = int(math.ceil(reach)) + dilate_px + r_feather + 2  # room for rotation, dilation and feather
    side = 2 * half + 1
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), 1.0)
    m[:, 2] += (half - cx, half - cy)
    pix = cv2.warpAffine(rgb, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    les = cv2.warpAffine((label_map == LABEL_LESION).astype(np.uint8), m, (side, side),
                         flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if dilate_px > 0:  # the method's 3x3 dilation, `dilate_px` times
        les = cv2.dilate(les, np.ones((3, 3), np.uint8), iterations=dilate_px)
    alpha = les.astype(np.float32)
    if feather > 0:
        k = 2 * r_feather + 1
        alpha = cv2.GaussianBlur(alpha, (k, k), feather, borderType=cv2.BORDER_CONSTANT)
        alpha[alpha < ALPHA_EPS] = 0
    support = alpha > 0
    sy, sx = np.nonzero(support)
    crop = np.s_[sy.min():sy.max() + 1, sx.min():sx.max() + 1]
    return LesionPatch(rgb=pix[crop].astype(np.float32), alpha=alpha[crop], lesion=les[crop] > 0,
                       support=support[crop])


def valid_offsets(distance: np.ndarray, support: np.ndarray, pad: int) -> np.ndarray:
    """Bool map over top-left offsets (H - h + 1, W - w + 1): True where `support` fits with margin `pad`.

    Exact: the FFT correlation counts forbidden pixels under the footprint; counts are integers and
    float64 round-off is ~1e-10, so `< 0.5` is the exact "no forbidden pixel" test.
    """
    big_h, big_w = distance.shape
    h, w = support.shape
    if h > big_h or w > big_w:
        return np.zeros((0, 0), bool)
    forbidden = (distance <= pad).astype(np.float64)
    # Circular correlation at the base's size: offsets that keep the patch inside never wrap.
    spec = np.fft.rfft2(forbidden) * np.conj(np.fft.rfft2(support.astype(np.float64), s=forbidden.shape))
    hits = np.fft.irfft2(spec, s=forbidden.shape)
    return hits[:big_h - h + 1, :big_w - w + 1] < 0.5


def naive_valid_offsets(label_map: np.ndarray, support: np.ndarray, pad: int) -> np.ndarray:
    """Reference: erode the skin region by `pad`, then loop over candidate corners in Python (slow)."""
    import cv2

    allowed = allowed_region(label_map).astype(np.uint8)
    eroded = cv2.erode(allowed, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    big_h, big_w = label_map.shape
    h, w = support.shape
    out = np.zeros((max(big_h - h + 1, 0), max(big_w - w + 1, 0)), bool)
    for y in range(big_h - h + 1):
        for x in range(big_w - w + 1):
            out[y, x] = eroded[y:y + h, x:x + w][support].all()
    return out


def choose_offset(valid: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A uniformly random valid offset (row-major order, so the same seed picks the same one)."""
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return None
    y, x = divmod(int(idx[int(rng.integers(idx.size))]), valid.shape[1])
    return y, x


def composite(base_rgb: np.ndarray, base_map: np.ndarray, patch: LesionPatch,
              offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite the patch at `offset`; the output map gets label 1 on the placed lesion."""
    y, x = offset
    h, w = patch.alpha.shape
    rgb = base_rgb.copy()
    region = rgb[y:y + h, x:x + w].astype(np.float32)
    # base + a * (donor - base): exactly the base where alpha is 0, so nothing outside moves.
    blended = region + patch.alpha[..., None] * (patch.rgb - region)
    rgb[y:y + h, x:x + w] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    label_map = base_map.copy()
    label_map[y:y + h, x:x + w][patch.lesion] = LABEL_LESION
    return rgb, label_map


def fit_donor(rgb: np.ndarray, label_map: np.ndarray, base_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Bring the donor to the base's scale: one factor matching shorter sides (aspect kept)."""
    import cv2

    scale = min(base_hw) / min(label_map.shape)
    if scale == 1.0:
        return rgb, label_map, scale
    h, w = (max(1, int(round(s * scale))) for s in label_map.shape)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return (cv2.resize(rgb, (w, h), interpolation=interp),
            cv2.resize(label_map, (w, h), interpolation=cv2.INTER_NEAREST), scale)


def map_lesion(base_rgb: np.ndarray, base_map: np.ndarray, donor_rgb: np.ndarray, donor_map: np.ndarray,
               *, pads: tuple[int, ...], rotate: bool, dilate_px: int, feather: float,
               seed: int) -> Mapped:
    """Move the donor's lesion onto the base: first pad in `pads` with a valid offset wins.

    Steps: 1. draw the angle from the pair's seed; 2. cut the patch; 3. find valid offsets per pad
    (one distance transform, one FFT correlation per pad tried); 4. draw an offset; 5. composite.
    Raises PlacementError (`base_has_no_skin`, `donor_has_no_lesion`, `no_placement_fits`).
    """
    check_pair(base_rgb, base_map, donor_rgb, donor_map)
    rng = np.random.default_rng(seed)
    # Rounded so the recorded angle reproduces the image exactly.
    angle = round(float(rng.uniform(0.0, 360.0)), 3) if rotate else 0.0
    donor_rgb, donor_map, _ = fit_donor(donor_rgb, donor_map, base_map.shape)
    patch = cut_patch(donor_rgb, donor_map, angle, dilate_px, feather)
    distance = skin_distance(base_map)
    if not distance.any():
        raise PlacementError("base_has_no_skin", "the base's label map has no skin, lesion or marker pixels")
    for pad in pads:
        offset = choose_offset(valid_offsets(distance, patch.support, pad), rng)
        if offset is not None:
            rgb, label_map = composite(base_rgb, base_map, patch, offset)
            return Mapped(rgb, label_map, int(pad), offset, angle, patch.support.shape)
    raise PlacementError("no_placement_fits",
                         f"a {patch.support.shape[0]}x{patch.support.shape[1]} lesion footprint fits nowhere "
                         f"inside the base's skin region with any pad of {list(pads)}")


def check_pair(base_rgb: np.ndarray, base_map: np.ndarray, donor_rgb: np.ndarray, donor_map: np.ndarray) -> None:
    for name, rgb, lm in (("base", base_rgb, base_map), ("donor", donor_rgb, donor_map)):
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise PlacementError(f"{name}_image_not_rgb", f"{name} image has shape {rgb.shape} dtype "
                                                          f"{rgb.dtype}; expected (H, W, 3) uint8")
        if lm.shape != rgb.shape[:2]:
            raise PlacementError(f"{name}_mask_size_mismatch", f"{name} label map is {lm.shape}, its "
                                                               f"image {rgb.shape[:2]}; they must match")
