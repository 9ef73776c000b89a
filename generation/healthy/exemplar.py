"""CPU healthy fill that looks like skin: a smooth membrane for colour plus real skin texture copied from nearby.

Telea's fast marching leaves flat faceted polygons over a large hole; seeded grain over it is noise
of the wrong grain size. Here the fill is split by frequency:
- low frequencies: the harmonic membrane (Laplace equation, `generation.membrane`) of the
  surrounding skin's local mean colour (a normalized Gaussian blur over known skin only), so the
  colour flows in smoothly from every side instead of in facets;
- high frequencies: the residual (image minus its local mean) of a region of known skin with
  exactly the hole's shape, the nearest such region to the hole (the exact placement search of
  `generation.lesion_map.placement` finds where the shape fits inside known skin); pores, hair and
  fine shading are real skin from the same photo.
When no region of the hole's shape fits in the known skin of the window, the texture comes from
seeded grain with the surrounding skin's detail amplitude (as the Telea backend does).
Hand-written: OpenCV's exemplar/FSR inpainting lives in opencv-contrib, which cannot be installed
next to opencv-python-headless. Deterministic: integer search, one LU solve, fixed operations.
"""
from __future__ import annotations

import numpy as np

SIGMA = 3.0  # px: the split between colour (membrane) and texture (copied residual)


def local_mean(img: np.ndarray, known: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """Gaussian mean of `img` over `known` pixels only (unknown pixels do not bleed in)."""
    import cv2

    w = cv2.GaussianBlur(known.astype(np.float64), (0, 0), sigma)
    num = cv2.GaussianBlur(img * known[..., None], (0, 0), sigma)
    return num / np.maximum(w, 1e-9)[..., None]


def texture_source(hole: np.ndarray, known: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """(dy, dx) shift to the nearest region of known skin with the hole's exact shape (ties: seeded), or None."""
    from generation.fit import bbox as _bbox, valid_offsets

    y0, x0, h, w = _bbox(hole.view(np.uint8))
    footprint = hole[y0:y0 + h, x0:x0 + w]
    valid = valid_offsets(known.astype(np.uint8), footprint)
    ys, xs = np.nonzero(valid)
    if ys.size == 0:
        return None
    d = (ys - y0) ** 2 + (xs - x0) ** 2
    near = np.flatnonzero(d == d.min())
    k = int(near[int(rng.integers(near.size))])
    return int(ys[k] - y0), int(xs[k] - x0)


MIN_TILE = 8  # px: holes no region fits whole are textured in quadrants down to this size


def exemplar_fill(crop: np.ndarray, hole: np.ndarray, skin: np.ndarray, seed: int) -> np.ndarray:
    """uint8 crop with `hole` filled: membrane colour + copied skin texture; pixels outside `hole` untouched."""
    from generation.membrane import membrane
    from generation.healthy.texture import add_grain

    img = crop.astype(np.float64)
    known = skin & ~hole
    if not known.any():
        known = ~hole
    mean = local_mean(img, known)
    colour = membrane(hole, mean)
    texture = np.zeros_like(img)
    rest = np.zeros(hole.shape, bool)  # parts no region of known skin could texture
    _texture(hole, known, img - mean, texture, rest, np.random.default_rng(seed))
    out = crop.copy()
    out[hole] = np.clip(np.rint(colour[hole] + texture[hole]), 0, 255).astype(np.uint8)
    return add_grain(out, crop, rest, 1.0, seed) if rest.any() else out


def _texture(part: np.ndarray, known: np.ndarray, residual: np.ndarray, texture: np.ndarray, rest: np.ndarray,
             rng: np.random.Generator) -> None:
    """Copy into `texture` the residual of the nearest known region shaped like `part`; if none fits,
    do the same for each quadrant of `part`'s bounding box (down to MIN_TILE px), else mark it in `rest`."""
    from generation.fit import bbox as _bbox

    if not part.any():
        return
    shift = texture_source(part, known, rng)
    if shift is not None:
        ys, xs = np.nonzero(part)
        texture[ys, xs] = residual[ys + shift[0], xs + shift[1]]
        return
    y0, x0, h, w = _bbox(part.view(np.uint8))
    if max(h, w) < 2 * MIN_TILE:
        rest |= part
        return
    hy, hx = (h + 1) // 2 if h >= 2 * MIN_TILE else h, (w + 1) // 2 if w >= 2 * MIN_TILE else w
    for ty in range(y0, y0 + h, hy):
        for tx in range(x0, x0 + w, hx):
            sub = np.zeros_like(part)
            sub[ty:ty + hy, tx:tx + hx] = part[ty:ty + hy, tx:tx + hx]
            _texture(sub, known, residual, texture, rest, rng)
