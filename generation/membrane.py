"""The harmonic membrane: the smooth field inside a region equal to given values on its boundary (the
discrete Laplace equation, solved with SuperLU). Poisson blending (`generation.lesion_map.blend`)
uses it for the colour ratio across a pasted lesion; the exemplar fill (`generation.healthy.exemplar`)
for the colour of a healed region.
"""
from __future__ import annotations

import math

import numpy as np

MAX_UNKNOWNS = 12_000   # footprint pixels solved at full resolution; larger ones on a coarser grid


def membrane(inside: np.ndarray, boundary: np.ndarray) -> np.ndarray:
    """(H, W, C): harmonic inside `inside`, equal to `boundary` on its 4-neighbours outside; 0 elsewhere.

    Pixels at the image edge have fewer neighbours (a natural boundary). Footprints above
    MAX_UNKNOWNS pixels are solved on a grid coarsened by an integer factor and upsampled linearly.
    """
    import cv2

    n = int(inside.sum())
    f = max(1, math.ceil(math.sqrt(n / MAX_UNKNOWNS)))
    if f == 1:
        return solve(inside, boundary)
    hh, ww = -(-inside.shape[0] // f), -(-inside.shape[1] // f)
    small_in = cv2.resize(inside.astype(np.float64), (ww, hh), interpolation=cv2.INTER_AREA) > 0.5
    small_b = _resize(boundary, (ww, hh), cv2.INTER_AREA)
    field = _resize(solve(small_in, small_b, fill_all=True), inside.shape[::-1], cv2.INTER_LINEAR)
    return np.where(inside[..., None], field, 0.0)


def _resize(arr: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    """cv2.resize three channels at a time (some of its paths take at most four)."""
    import cv2

    parts = [cv2.resize(np.ascontiguousarray(arr[..., c:c + 3]), size, interpolation=interpolation)
             for c in range(0, arr.shape[2], 3)]
    return np.concatenate([p if p.ndim == 3 else p[..., None] for p in parts], axis=2)


def solve(inside: np.ndarray, boundary: np.ndarray, fill_all: bool = False) -> np.ndarray:
    """Discrete Laplace equation on `inside` with Dirichlet values from `boundary`, all channels, one LU."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as sla

    h, w = inside.shape
    idx = np.full((h + 2, w + 2), -1, np.int64)  # framed: neighbours outside the image read -1
    ys, xs = np.nonzero(inside)
    n = ys.size
    out = boundary.copy() if fill_all else np.zeros_like(boundary)
    if n == 0:
        return out
    idx[ys + 1, xs + 1] = np.arange(n)
    framed = np.zeros((h + 2, w + 2), bool)
    framed[1:-1, 1:-1] = True
    rows, cols, rhs, degree = [], [], np.zeros((n, boundary.shape[2])), np.zeros(n)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = ys + 1 + dy, xs + 1 + dx
        in_image = framed[ny, nx]
        j = idx[ny, nx]
        degree += in_image
        unknown = j >= 0
        rows.append(np.flatnonzero(unknown))
        cols.append(j[unknown])
        known = in_image & ~unknown
        rhs[known] += boundary[ny[known] - 1, nx[known] - 1]
    r, c = np.concatenate(rows), np.concatenate(cols)
    a = sp.csc_matrix((np.concatenate([degree, -np.ones(r.size)]),
                       (np.concatenate([np.arange(n), r]), np.concatenate([np.arange(n), c]))), shape=(n, n))
    sol = sla.splu(a, permc_spec="COLAMD").solve(rhs)
    out[ys, xs] = sol
    return out
