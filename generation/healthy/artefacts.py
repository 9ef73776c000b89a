"""Artefacts of a healed region that an eye catches, measured: what the fill benchmark scores, what the
review flags and what the build counts for the card.

Each detector is a pure function of the healed image, the original photo and the region that was
filled (bool), and returns one number that is 0 for a clean fill:

- `copied_mark`: pixels of text or marks (watermarks, captions, ink: thin grey strokes near white or
  black) inside the fill that are a copy of a mark elsewhere in the photo (a normalized cross-correlation
  of at least COPY_NCC with a place outside the region);
- `foreign_colour`: the largest share, in any FOREIGN_WINDOW square of the fill, of colours no skin
  around it has (farther than FOREIGN_DE from every colour of the skin ring, or a non-skin colour:
  near-black, near-white grey, green, blue, where the ring itself has few of them): smudges and casts;
- `seam`: the strongest straight line of the fill (a stretch of a row or a column whose jumps, in
  both directions, stand out from the lines beside it): quadrant and tile borders;
- `flat_texture`: the fill's fine-detail contrast over the ring's (1 = as textured as the skin
  around it; a smooth blurred oval is far below 1), flagged below its threshold;
- `tiling`: the share of the fill's fine texture that repeats inside the fill (the highest normalized
  autocorrelation of its high-pass at a shift of at least TILE_MIN_SHIFT pixels).

The colour helpers (`lab`, `non_skin_colour`, `text_strokes`) are also what the fill uses to keep marks
out of its texture sources, so a fill and its measure agree on what a mark is.
"""
from __future__ import annotations

import numpy as np

from builder.core import colour

RING_PX = 15            # the skin band around the region that the fill is compared with
STROKE_CONTRAST = 60    # a thin stroke is this much brighter / darker than its 9x9 surroundings
COPY_NCC = 0.7          # copied_mark: a mark of the photo that matches a place in the fill this well is copied
MARK_MIN_PX = 12        # a mark holds at least this many stroke pixels (a speckle is skin) ...
MARK_MIN_DENSITY = 0.15  # ... filling this share of its box (scattered glints do not) ...
MARK_MIN_SIDE = 6       # ... and this many pixels across
FOREIGN_DE = 20.0       # foreign_colour: CIE76 distance to the nearest ring colour ...
FOREIGN_WINDOW = 31     # ... share measured in the worst square of this side (px)
SEAM_RUN = 64           # seam: stretches of a line this long are compared with their neighbours
SEAM_FLOOR = 2.0        # ... whose jumps count as at least this (grey levels): flat skin has no seams to see
SEAM_CAP = 4.0          # ... one pixel's jump counts at most this many times the fill's median jump
MAX_MARKS = 40          # copied_mark: the largest marks of the photo that are looked for
TILE_MIN_SHIFT = 6      # tiling: repeats closer than this are the texture's own grain
TILE_PEAKS = 8          # ... shifts looked at (the autocorrelation's highest)
TILE_WINDOW = 15        # ... neighbourhood compared (px)
TILE_NCC = 0.9          # ... a neighbourhood this correlated with the one at the shift repeats it
TILE_MIN_STD = 1.5      # ... neighbourhoods flatter than this (grey levels) are not counted

# value above threshold = flagged, except `flat_texture`, flagged below its threshold
# flat_texture 0.65: the hairless smooth patch an eye sees on the hairy forearm of Fitzpatrick17k photo
# 0abb64cc healed by the quilt fill measures 0.58 (0.5 let it pass)
THRESHOLDS = {"copied_mark": 30.0, "foreign_colour": 0.1, "seam": 3.0, "tiling": 0.05, "flat_texture": 0.65}
DETECTORS = tuple(THRESHOLDS)
BELOW = ("flat_texture",)


lab = colour.lab8  # CIE L*a*b* through OpenCV (L 0-100)


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
    return colour.grey_strokes(rgb, STROKE_CONTRAST, max_chroma=12, bright=80, dark=20)


def mark_parts(rgb: np.ndarray, exclude: np.ndarray | None = None) -> tuple[np.ndarray, list[tuple]]:
    """Text and marks: text-like strokes grouped by a 2 px dilation (the letters of a word become one
    mark), each group holding at least MARK_MIN_PX stroke pixels, MARK_MIN_DENSITY of its box and
    MARK_MIN_SIDE px across (specular speckles and hair glints, small or scattered, are skin).
    Returns the strokes of the marks (bool) and each mark's (x, y, w, h, stroke pixels)."""
    import cv2

    strokes = text_strokes(rgb)
    if exclude is not None:
        strokes &= ~exclude
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dilate(strokes, 2).astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros(strokes.shape, bool), []
    counts = np.bincount(labels[strokes], minlength=n)
    w, h = np.maximum(stats[:, 2] - 4, 1), np.maximum(stats[:, 3] - 4, 1)  # the strokes' own box
    dense = (counts >= MARK_MIN_DENSITY * w * h) & (np.maximum(w, h) >= MARK_MIN_SIDE)
    keep = np.flatnonzero((counts >= MARK_MIN_PX) & dense)
    keep = keep[keep > 0]
    parts = [(*(int(v) for v in stats[k, :4]), int(counts[k])) for k in keep]
    return strokes & np.isin(labels, keep), parts


def marks(rgb: np.ndarray) -> np.ndarray:
    """Text and marks a fill must never copy (`mark_parts`), widened by 3 px to hold their outlines."""
    return dilate(mark_parts(rgb)[0], 3)


def ring(region: np.ndarray, skin: np.ndarray | None = None, px: int = RING_PX) -> np.ndarray:
    """The band of `px` around `region` (only skin pixels, given a skin mask with enough of them)."""
    out = dilate(region, px) & ~region
    return out & skin if skin is not None and (out & skin).sum() > 50 else out


def measure(healed: np.ndarray, photo: np.ndarray, region: np.ndarray,
            skin: np.ndarray | None = None) -> dict[str, float]:
    """Every detector's value for one healed image ({} when the region or its ring is empty)."""
    around = ring(region, skin)
    if not region.any() or not around.any():
        return {}
    return {"copied_mark": copied_mark(healed, photo, region),
            "foreign_colour": foreign_colour(healed, region, around),
            "seam": seam(healed, region), "tiling": tiling(healed, region),
            "flat_texture": flat_texture(healed, region, around)}


def fired(values: dict[str, float]) -> list[str]:
    """The detectors whose value is past their threshold (above it; below it for `flat_texture`)."""
    return [k for k in DETECTORS if k in values and is_fired(k, values[k])]


def is_fired(name: str, value: float) -> bool:
    return value < THRESHOLDS[name] if name in BELOW else value > THRESHOLDS[name]


def copied_mark(healed: np.ndarray, photo: np.ndarray, region: np.ndarray) -> float:
    """Stroke pixels of the photo's marks (outside the region) whose pattern reappears inside the fill
    (0 = none).

    Each mark (`mark_parts`, with a 4 px margin) is matched by normalized cross-correlation of the
    high-pass grey image, which ignores the colour and contrast a fill gives it, against every place
    of the healed image whose window centre lies in the region."""
    import cv2

    _, parts = mark_parts(photo, exclude=dilate(region, 2))
    if not parts:
        return 0.0
    hp_photo, hp_healed = _high_pass(photo), _high_pass(healed)
    copied = 0
    for x, y, w, h, px in sorted(parts, key=lambda p: (-p[4], p[:2]))[:MAX_MARKS]:
        y0, x0 = max(0, y - 4), max(0, x - 4)
        tpl = hp_photo[y0:y + h + 4, x0:x + w + 4]
        if tpl.shape[0] >= hp_healed.shape[0] // 2 or tpl.shape[1] >= hp_healed.shape[1] // 2:
            continue
        score = cv2.matchTemplate(hp_healed, tpl, cv2.TM_CCOEFF_NORMED)
        th, tw = tpl.shape
        centre = region[th // 2:th // 2 + score.shape[0], tw // 2:tw // 2 + score.shape[1]]
        if centre.any() and float(np.nan_to_num(score[centre], nan=0.0).max()) >= COPY_NCC:
            copied += px
    return float(copied)


def foreign_colour(healed: np.ndarray, region: np.ndarray, around: np.ndarray) -> float:
    """The largest share of foreign pixels in any FOREIGN_WINDOW square mostly inside the fill (a small
    dark smudge is as visible as a large cast). A pixel is foreign when it lies farther than FOREIGN_DE
    from every colour of the ring, or has a non-skin colour (`non_skin_colour`) that the ring itself
    rarely has (under 5% of it)."""
    import cv2

    L = lab(healed)
    foreign = np.zeros(region.shape, np.float32)
    far = _far_from(L[region], L[around], FOREIGN_DE)
    odd = non_skin_colour(healed)
    if odd[around].mean() < 0.05:
        far |= odd[region]
    foreign[region] = far
    k = (FOREIGN_WINDOW, FOREIGN_WINDOW)
    count = cv2.boxFilter(region.astype(np.float32), -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    hits = cv2.boxFilter(foreign, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    ok = count >= 0.5 * FOREIGN_WINDOW ** 2
    if not ok.any():
        return float(far.mean())
    return float((hits[ok] / count[ok]).max())


def _far_from(colours: np.ndarray, palette: np.ndarray, radius: float, step: float = 2.0) -> np.ndarray:
    """Per row of `colours` (Lab): True when no `palette` colour lies within `radius` (to `step`/2: a
    Euclidean distance map over a Lab grid of `step` units, so every pixel is measured)."""
    from scipy.ndimage import distance_transform_edt

    lo = np.array([0.0, -128.0, -128.0])
    shape = tuple(int(v) for v in np.ceil((np.array([100.0, 128.0, 128.0]) - lo) / step) + 1)
    grid = np.ones(shape, bool)
    idx = np.clip(np.rint((palette - lo) / step).astype(int), 0, np.array(shape) - 1)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = False
    dist = distance_transform_edt(grid) * step
    q = np.clip(np.rint((colours - lo) / step).astype(int), 0, np.array(shape) - 1)
    return dist[q[:, 0], q[:, 1], q[:, 2]] > radius


def flat_texture(healed: np.ndarray, region: np.ndarray, around: np.ndarray) -> float:
    """Spread of the fill's high-pass (inner part) over that of the ring around it (1 = as textured)."""
    inner = region & ~dilate(~region, 2)
    if inner.sum() < 16:
        return 1.0
    hp = _high_pass(healed)
    ring_spread = float(hp[around].std())
    return float(hp[inner].std()) / ring_spread if ring_spread > 0 else 1.0


def _high_pass(rgb: np.ndarray) -> np.ndarray:
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return gray - cv2.GaussianBlur(gray, (0, 0), 2.0)


def seam(healed: np.ndarray, region: np.ndarray) -> float:
    """The strongest straight seam: along every SEAM_RUN-pixel stretch of a row or column of the fill
    (lightly blurred), the mean jump across the line (over two pixels; each jump capped at SEAM_CAP times
    the fill's median jump, so a blob's edge is no seam) divided by the median of the same figure on
    the lines 3 to 5 pixels each side (1 = no line stands out; hair and folds are seldom straight and
    level for SEAM_RUN pixels)."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(healed), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)  # JPEG's 8 px block edges are finer than a seam
    inner = (region & ~dilate(~region, 3)).astype(np.float32)
    best = 0.0
    for axis in (0, 1):
        g, m = (gray, inner) if axis == 0 else (gray.T, inner.T)
        d = np.abs(g[2:] - g[:-2])  # line i + 1 lies between rows i and i + 2
        both = m[2:] * m[:-2]
        if not both.any():
            continue
        d = np.minimum(d, SEAM_CAP * max(float(np.median(d[both > 0])), SEAM_FLOOR / SEAM_CAP))
        count = cv2.boxFilter(both, -1, (SEAM_RUN, 1), normalize=False)  # along the line
        total = cv2.boxFilter(d * both, -1, (SEAM_RUN, 1), normalize=False)
        full = count >= 0.9 * SEAM_RUN
        best = max(best, _against_neighbours(np.where(full, total / np.maximum(count, 1), np.nan), full))
    return best


def _against_neighbours(e: np.ndarray, full: np.ndarray) -> float:
    """max over lines i (rows of `e`) of e[i] / median(e[i +- 3..5]), where all seven are full."""
    h, offs = e.shape[0], (-5, -4, -3, 3, 4, 5)
    if h < 11:
        return 0.0
    centre = e[5:h - 5]
    others = np.stack([e[5 + k:h - 5 + k] for k in offs])
    ok = full[5:h - 5] & np.stack([full[5 + k:h - 5 + k] for k in offs]).all(axis=0)
    if not ok.any():
        return 0.0
    ref = np.median(others[:, ok], axis=0)
    return float(np.max(centre[ok] / np.maximum(ref, SEAM_FLOOR)))


def tiling(healed: np.ndarray, region: np.ndarray) -> float:
    """Share of the fill that repeats inside the fill: for the TILE_PEAKS shifts (of TILE_MIN_SHIFT px or
    more, off JPEG's 8 px block grid) where the fill's high-pass autocorrelates most, the share of
    fill pixels whose TILE_WINDOW neighbourhood correlates with the one at that shift above TILE_NCC;
    the largest share (0 = nothing repeats)."""
    inner = region & ~dilate(~region, 2)
    if inner.sum() < 4 * TILE_WINDOW ** 2:
        return 0.0
    ys, xs = np.nonzero(inner)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    m = inner[y0:y1, x0:x1].astype(np.float32)
    f = _high_pass(healed)[y0:y1, x0:x1] * m
    best = 0.0
    for dy, dx in _peaks(f, m):
        best = max(best, _repeated_share(f, m, dy, dx))
    return best


def _peaks(f: np.ndarray, m: np.ndarray) -> list[tuple[int, int]]:
    """The TILE_PEAKS shifts with the highest autocorrelation of `f` per overlapping pixel (FFT)."""
    shape = (2 * f.shape[0], 2 * f.shape[1])
    F, M = np.fft.rfft2(f, shape), np.fft.rfft2(m, shape)
    corr = np.fft.irfft2(F * np.conj(F), shape)
    overlap = np.fft.irfft2(M * np.conj(M), shape)
    dy = np.fft.fftfreq(shape[0], 1 / shape[0]).astype(int)[:, None]
    dx = np.fft.fftfreq(shape[1], 1 / shape[1]).astype(int)[None, :]
    ok = (overlap > 4 * TILE_WINDOW ** 2) & (np.hypot(dy, dx) >= TILE_MIN_SHIFT) & ~((dy % 8 == 0) & (dx % 8 == 0))
    score = np.where(ok, corr / np.maximum(overlap, 1.0), -np.inf)
    top = np.argsort(score, axis=None)[::-1][:TILE_PEAKS]
    iy, ix = np.unravel_index(top, shape)
    return [(int(dy[i, 0]), int(dx[0, j])) for i, j in zip(iy, ix) if np.isfinite(score[i, j])]


def _repeated_share(f: np.ndarray, m: np.ndarray, dy: int, dx: int) -> float:
    """Share of `m` pixels whose window of `f` correlates above TILE_NCC with the window at (dy, dx)."""
    import cv2

    g, mg = _shift(f, dy, dx), _shift(m, dy, dx)
    both = m * mg
    k = (TILE_WINDOW, TILE_WINDOW)
    fg = cv2.boxFilter(f * g * both, -1, k, normalize=False)
    ff = cv2.boxFilter(f * f * both, -1, k, normalize=False)
    gg = cv2.boxFilter(g * g * both, -1, k, normalize=False)
    n = cv2.boxFilter(both, -1, k, normalize=False)
    textured = (ff > n * TILE_MIN_STD ** 2) & (gg > n * TILE_MIN_STD ** 2) & (n >= 0.5 * TILE_WINDOW ** 2)
    ncc = fg / np.sqrt(np.maximum(ff * gg, 1e-6))
    return float(((ncc > TILE_NCC) & textured & (m > 0)).sum() / m.sum())


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = a[y + dy, x + dx] (zero outside)."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = slice(max(0, dy), min(h, h + dy)), slice(max(0, -dy), min(h, h - dy))
    xs, xd = slice(max(0, dx), min(w, w + dx)), slice(max(0, -dx), min(w, w - dx))
    out[yd, xd] = a[ys, xs]
    return out
