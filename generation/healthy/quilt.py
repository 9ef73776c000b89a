"""CPU healthy fill from clean skin only: a smooth membrane for colour, and texture quilted from many
patches of skin that looks like the skin around the hole, cross-faded so no seam or tile shows.

The nearest-region exemplar fill (`generation.healthy.exemplar`) copies whatever lies near the hole:
a watermark, a drape edge, the frame's border; its quadrants meet on straight seams and repeat the
same source. Here:

- sources are *clean skin*: known skin that is no text or mark (`artefacts.marks`), not within
  EDGE_PX of non-skin or of the window's edge, of a skin colour, and whose local colour is within
  a tolerance of the skin ring around the hole (tolerance: the ring's own spread, at least MIN_TOL_DE);
- the colour is the harmonic membrane (`generation.membrane`) of the local mean of the skin around
  the hole (marks left out), its boundary values taken from the nearest such skin wherever the hole
  borders something else (a drape, a mark), so no dark smudge flows in. Near the edge it is the ring's
  own shade; deeper in, its tint (CIE a*, b*; not its lightness, which carries shading) turns over
  HALO_FADE of the hole's width to the tint of the skin's mean over HALO_FRAC of the hole's width
  (skin only), so a red halo that rings the lesion fades into the healed skin instead of tinting all of it;
- the texture is each source's ratio to its local mean (multiplicative: it scales with the target's
  colour), at a scale that grows with the hole (SIGMA px for small holes, up to MAX_SIGMA for large
  ones), laid in square tiles on a half-overlapping grid with sine windows whose squares sum to one
  (independent textures keep their contrast across the overlap: no seam). Each tile takes a source
  chosen, seeded, among the NEAR_CANDIDATES nearest clean squares of matching colour that overlap no
  source already used, so nothing repeats while clean skin remains. Holes wider than COARSE_HOLE tiles
  get a second, coarser band quilted the same way, lightness only (the local mean at the texture's
  scale over the local mean at COARSE x that scale; tiles up to COARSE x as large, from clean skin away
  from the limb's outline, where shading is): the mottling and creases a membrane alone smooths into a
  flat oval. It is left out where clean skin holds too few coarse tiles (they would repeat);
- whole clean squares fit where clean skin is least interrupted, its smoother part: the laid texture's
  finest band (under DETAIL_SIGMA) is raised to the clean skin's own contrast (`restore_detail`).
Where no clean square fits (even at MIN_TILE px), the texture is seeded grain with the ring's detail
spread, as the Telea fill does. Deterministic: fixed operations and one seeded generator.
"""
from __future__ import annotations

import numpy as np

SIGMA, MAX_SIGMA = 3.0, 8.0   # px: the colour / texture split, for small and for large holes
EDGE_PX = 3                   # clean skin keeps this far from non-skin, marks and the window's edge
MIN_TOL_DE = 12.0             # colour tolerance (CIE76) of a source against the ring, at least
RING_PX = 15                  # the skin ring around the hole whose colours sources must match
MIN_TILE = 8                  # px: smallest tile tried before grain
MIN_SOURCES = 12              # a tile size needs this many tiles' worth of clean skin
NEAR_CANDIDATES = 12          # each tile picks among this many best sources (seeded)
RED_IQR, MIN_RED = 1.5, 4.0   # a* above the ring's upper quartile by this many IQRs (at least MIN_RED): a red spot
COARSE = 4                    # the coarse band's scale and tile size, x the fine band's
COARSE_HOLE = 2.0             # a hole this many fine tiles across (square root of its area) gets the coarse band
MAX_COARSE_TILE = 192         # px
COARSE_SOURCES = 4            # clean skin must hold this many coarse tiles' worth
HALO_FRAC, MIN_HALO, MAX_HALO = 0.25, 6, 96  # the scale (px) of the skin's mean that sets the deep colour
HALO_FADE = 0.15              # the ring's shade gives way to the deeper colour over this share of the hole's width
DETAIL_SIGMA = 2.0            # px: the finest band (pores, skin lines) whose contrast the fill restores ...
MAX_DETAIL_GAIN = 1.5         # ... raising it at most this many times
LUMA = np.array([0.299, 0.587, 0.114])  # grey (ITU-R 601) weights: the bands measured or quilted as lightness only
REVISION = 4                  # of this fill's output (a stage's fingerprint): 2 = coarse band and halo fade,
#                               3 = its Lab the kernel's, 4 = the finest band's contrast restored


def quilt_fill(crop: np.ndarray, hole: np.ndarray, skin: np.ndarray, seed: int) -> np.ndarray:
    """uint8 crop with `hole` filled from clean skin; pixels outside `hole` untouched."""
    from generation.healthy.exemplar import local_mean
    from generation.healthy.texture import add_grain

    from generation.healthy.artefacts import dilate, marks

    img = crop.astype(np.float64)
    clean = clean_skin(crop, hole, skin)
    width = float(np.sqrt(hole.sum()))
    size, fits = tile_size(clean, float(np.clip(width / 24.0, SIGMA, MAX_SIGMA)))
    sigma = max(SIGMA, size / 8.0)  # the texture's scale: what a tile can hold without a visible dome
    base = clean if clean.any() else (skin & ~hole if (skin & ~hole).any() else ~hole)
    # the colour comes from all the skin around the hole but marks (the ring's own shade, not the
    # clean sources' average); the texture from clean skin only
    tinted = skin & ~hole & ~marks(crop)
    tinted = tinted if tinted.any() else base
    coarse = None
    if fits is not None and width >= COARSE_HOLE * size:
        # shading: skin darkens towards a limb's outline over more than the fine band's scale
        far_in = clean & ~dilate(~skin & ~hole, int(2 * COARSE * sigma)) & ~_frame(hole.shape, int(COARSE * sigma))
        c_size, c_fits = tile_size(far_in, COARSE * sigma, largest=MAX_COARSE_TILE, smallest=size, need=True,
                                   sources=COARSE_SOURCES)
        if c_fits is not None:
            coarse = (c_size, c_fits, max(COARSE * sigma, c_size / 8.0))
    colour = halo_faded_colour(img, hole, tinted, sigma, width)
    mean = nearest_fill(local_mean(img, base, sigma), base)
    out = crop.copy()
    if fits is None:
        out[hole] = np.clip(np.rint(colour[hole]), 0, 255).astype(np.uint8)
        return add_grain(out, crop, hole, 1.0, seed)
    rng = np.random.default_rng(seed)
    ratio = np.where(base[..., None], img / np.maximum(mean, 1.0) - 1.0, 0.0)
    texture = restore_detail(lay_tiles(hole, fits, ratio, mean, colour, size, rng), ratio, hole, clean)
    gain = 1.0 + texture
    if coarse:
        c_size, c_fits, c_sigma = coarse
        c_mean = nearest_fill(broad_mean(img, base, c_sigma), base)
        # lightness only: a coarse tint would read as a stain
        c_ratio = np.where(base, (mean @ LUMA) / np.maximum(c_mean @ LUMA, 1.0) - 1.0, 0.0)
        c_ratio = np.repeat(c_ratio[..., None], 3, axis=2)
        gain *= 1.0 + lay_tiles(hole, c_fits, c_ratio, c_mean, colour, c_size, rng)
    out[hole] = np.clip(np.rint(colour[hole] * gain[hole]), 0, 255).astype(np.uint8)
    return out


def restore_detail(texture: np.ndarray, ratio: np.ndarray, hole: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The laid texture with its finest band (under DETAIL_SIGMA) raised to the contrast of the clean skin
    it comes from (at most MAX_DETAIL_GAIN times). Whole clean squares fit where clean skin is least
    interrupted by what it leaves out (red dots, hairs, marks, odd colours), which is its smoother part:
    measured on four full-size heals, the squares chosen held 5-25% less fine-detail contrast than the
    clean skin around them, and the heal read as a smooth disc. Both spreads are of the lightness, on
    pixels at least 2 DETAIL_SIGMA inside the clean skin and inside the hole (a band's edge is no detail)."""
    import cv2

    from generation.healthy.artefacts import dilate

    def band(x: np.ndarray) -> np.ndarray:
        return x - cv2.GaussianBlur(x, (0, 0), DETAIL_SIGMA)

    margin = int(2 * DETAIL_SIGMA)
    inside, deep = clean & ~dilate(~clean, margin), hole & ~dilate(~hole, margin)
    if inside.sum() < 64 or deep.sum() < 64:
        return texture
    fine = band(texture)
    want, have = float(band(ratio @ LUMA)[inside].std()), float((fine @ LUMA)[deep].std())
    if have <= 0.0:
        return texture
    return texture + (float(np.clip(want / have, 1.0, MAX_DETAIL_GAIN)) - 1.0) * fine


def halo_faded_colour(img: np.ndarray, hole: np.ndarray, tinted: np.ndarray, sigma: float,
                      width: float) -> np.ndarray:
    """The fill's colour: the membrane of the ring's local mean at the hole's edge, turning deeper in to
    the membrane of a wider mean of the skin around it (a halo ringing a lesion does not fill it)."""
    from scipy.ndimage import distance_transform_edt

    from builder.core import colour

    from generation.healthy.exemplar import local_mean
    from generation.membrane import membrane

    near = membrane(hole, nearest_fill(local_mean(img, tinted, sigma), tinted))
    wide = float(np.clip(HALO_FRAC * width, MIN_HALO, MAX_HALO))
    if wide <= sigma:
        return near
    far = membrane(hole, nearest_fill(broad_mean(img, tinted, wide), tinted))
    w = np.exp(-distance_transform_edt(hole) / max(1.0, HALO_FADE * width))[..., None]
    # only the tint fades (a* and b*): the ring's lightness carries shading the fill must continue
    near_lab, far_lab = (colour.rgb_to_lab(np.clip(c[hole], 0, 255)) for c in (near, far))
    near_lab[:, 1:] = w[hole] * near_lab[:, 1:] + (1.0 - w[hole]) * far_lab[:, 1:]
    out = near.copy()
    out[hole] = colour.lab_to_rgb(near_lab)
    return out


def broad_mean(img: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """`local_mean` at a broad scale, computed on a grid coarsened to a quarter of sigma and upsampled
    linearly (a Gaussian of sigma 100 px over a full-size photo costs seconds; its result is smooth)."""
    import cv2

    from generation.healthy.exemplar import local_mean

    f = int(sigma // 4)
    if f < 2:
        return local_mean(img, known, sigma)
    h, w = known.shape
    size = (max(1, -(-w // f)), max(1, -(-h // f)))
    weight = cv2.resize(known.astype(np.float64), size, interpolation=cv2.INTER_AREA)
    num = cv2.resize(img * known[..., None], size, interpolation=cv2.INTER_AREA)
    mean = cv2.GaussianBlur(num, (0, 0), sigma / f) / np.maximum(cv2.GaussianBlur(weight, (0, 0), sigma / f),
                                                                  1e-9)[..., None]
    return cv2.resize(mean, (w, h), interpolation=cv2.INTER_LINEAR)


def clean_skin(crop: np.ndarray, hole: np.ndarray, skin: np.ndarray) -> np.ndarray:
    """Known skin a fill may copy: no mark, away from non-skin and the window's edge, skin-coloured,
    and of a colour near the ring around the hole."""
    from generation.healthy.artefacts import dilate, lab, marks, non_skin_colour

    known = skin & ~hole
    bad = ~known | marks(crop)
    ring = dilate(hole, RING_PX) & known
    odd = non_skin_colour(crop)
    if ring.any() and odd[ring].mean() < 0.05:  # very light skin is near-white grey: then it is no tell
        bad |= odd
    bad = dilate(bad & ~hole, EDGE_PX) | _frame(hole.shape, EDGE_PX)
    clean = known & ~bad
    ring &= clean
    if ring.sum() < 16:
        return clean
    import cv2

    smooth = lab(cv2.GaussianBlur(crop, (0, 0), 2.0))
    centre = np.median(smooth[ring], axis=0)
    spread = np.linalg.norm(smooth[ring] - centre, axis=1)
    tol = max(MIN_TOL_DE, float(np.percentile(spread, 95)))
    clean &= np.linalg.norm(smooth - centre, axis=-1) <= tol
    # red spots (papules, erythema, blood) are no healthy texture, even where the ring has some
    red = lab(cv2.GaussianBlur(crop, (0, 0), 1.0))[..., 1]
    q1, q3 = np.percentile(red[ring], [25, 75])
    return clean & ~dilate(red > q3 + max(RED_IQR * (q3 - q1), MIN_RED), 2)


def _frame(shape: tuple[int, int], px: int) -> np.ndarray:
    out = np.ones(shape, bool)
    out[px:-px, px:-px] = False
    return out


def nearest_fill(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """`values` where `known`, elsewhere the value of the nearest known pixel (a membrane's boundary
    then never reads a drape, a mark or an empty mean)."""
    from scipy.ndimage import distance_transform_edt

    if known.all() or not known.any():
        return values
    _, (iy, ix) = distance_transform_edt(~known, return_indices=True)
    return values[iy, ix]


def tile_size(clean: np.ndarray, sigma: float, largest: int = 64, smallest: int = MIN_TILE,
              need: bool = False, sources: int = MIN_SOURCES) -> tuple[int, np.ndarray | None]:
    """The largest tile (8 sigma, 16 to `largest` px, halved down to `smallest`) for which clean skin holds
    MIN_SOURCES tiles' worth of squares (few sources would repeat in a visible lattice), and where its
    squares fit; the smallest tile that fits at all otherwise (None with `need`, which asks for the
    MIN_SOURCES); (`smallest`, None) when none does."""
    import cv2

    size = int(min(largest, max(16, 2 * round(4 * sigma))))
    found = (smallest, None)
    while size >= smallest:
        fits = _fits(clean, size)
        if fits.any():
            padded = np.zeros(clean.shape, np.uint8)
            padded[:fits.shape[0], :fits.shape[1]] = fits
            union = cv2.dilate(padded, np.ones((size, size), np.uint8), anchor=(size - 1, size - 1))
            if union.sum() >= sources * size * size:
                return size, fits
            if not need:
                found = (size, fits)
        size //= 2
    return found


def _fits(clean: np.ndarray, size: int) -> np.ndarray:
    """Top-left corners of size x size squares lying wholly in `clean`."""
    import cv2

    h, w = clean.shape
    if h < size or w < size:
        return np.zeros((0, 0), bool)
    inside = cv2.erode(clean.astype(np.uint8), np.ones((size, size), np.uint8), anchor=(0, 0),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return inside[:h - size + 1, :w - size + 1].astype(bool)


def lay_tiles(hole, fits, ratio, mean, colour, size, rng):
    """Texture (H, W, 3) over `hole`: sine-windowed tiles of `ratio` from clean squares (`fits`)."""
    step = size // 2
    win = np.sin(np.pi * (np.arange(size) + 0.5) / size)
    win2 = np.outer(win, win)
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    cy, cx = np.nonzero(fits)
    if cy.size > 20_000:  # a thinned grid of candidates (a 16th of a tile apart): same choice quality, bounded cost
        k = max(2, size // 16)
        keep = np.flatnonzero((cy % k == 0) & (cx % k == 0))
        cy, cx = cy[keep], cx[keep]
    src_mean = mean[cy + size // 2, cx + size // 2]
    uses = np.zeros(fits.shape, np.int32)  # how many chosen sources each candidate square overlaps
    texture, weight = np.zeros((h, w, 3)), np.zeros((h, w))
    for ty in range(ys.min() - step, ys.max() + 1, step):
        for tx in range(xs.min() - step, xs.max() + 1, step):
            y0, x0, y1, x1 = max(ty, 0), max(tx, 0), min(ty + size, h), min(tx + size, w)
            if y0 >= y1 or x0 >= x1 or not hole[y0:y1, x0:x1].any():
                continue
            target = colour[min(max(ty + size // 2, 0), h - 1), min(max(tx + size // 2, 0), w - 1)]
            k = _pick(cy, cx, src_mean, uses, ty, tx, target, size, rng)
            src = _orient(ratio[cy[k]:cy[k] + size, cx[k]:cx[k] + size], int(rng.integers(2)))
            wy = win2[y0 - ty:y1 - ty, x0 - tx:x1 - tx]
            part = src[y0 - ty:y1 - ty, x0 - tx:x1 - tx]
            part = part - (wy[..., None] * part).sum(axis=(0, 1)) / wy.sum()  # no tile brighter than another
            texture[y0:y1, x0:x1] += wy[..., None] * part
            weight[y0:y1, x0:x1] += wy ** 2
            uses[max(0, cy[k] - size + 1):cy[k] + size, max(0, cx[k] - size + 1):cx[k] + size] += 1
    return texture / np.sqrt(np.maximum(weight, 1e-6))[..., None]  # the texture's contrast where sums differ


def _orient(tile: np.ndarray, k: int) -> np.ndarray:
    """The square as is or turned half round (creases and hair keep their direction): a source used
    again does not show as the same tile."""
    return tile[::-1, ::-1] if k % 2 else tile


def _pick(cy, cx, src_mean, uses, ty, tx, target, size, rng) -> int:
    """A source for the tile at (ty, tx): seeded among the NEAR_CANDIDATES best by distance and colour,
    among the sources that overlap the fewest already used."""
    d = np.hypot(cy - ty, cx - tx) / size + np.abs(src_mean - target).sum(axis=1) / 8.0
    d = d + 1000.0 * uses[cy, cx]
    n = min(NEAR_CANDIDATES, d.size)
    best = np.argpartition(d, n - 1)[:n]
    best = best[np.argsort(d[best], kind="stable")]
    return int(best[int(rng.integers(n))])
