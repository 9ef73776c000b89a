"""Colour conversions and colour rules shared by the mask and lesion-map steps (pure numpy, float64).

`rgb_to_lab` / `lab_to_rgb` are the sRGB (D65) <-> CIE L*a*b* formulas written out, so a lesion map is
computed the same way on any machine; `drape` and `non_skin` are colour rules: what no skin and no
lesion looks like.
"""
from __future__ import annotations

import numpy as np

_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_M_INV = np.linalg.inv(_M)
_E, _K = 216 / 24389, 24389 / 27


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB values 0-255 -> CIE L*a*b* (L 0-100), float64."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (lin @ _M.T) / _WHITE
    f = np.where(xyz > _E, np.cbrt(xyz), (_K * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) CIE L*a*b* -> sRGB values 0-255 (float64, clipped to the gamut's 0-255 box)."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f ** 3 > _E, f ** 3, (116 * f - 16) / _K) * _WHITE
    lin = np.clip(xyz @ _M_INV.T, 0.0, 1.0)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(c * 255.0, 0.0, 255.0)


def drape(lab: np.ndarray) -> np.ndarray:
    """Greens and cyans (a* < -5: drapes, gowns) and blues without the red of a purple lesion."""
    a, b = lab[..., 1], lab[..., 2]
    return (a < -5) | ((b < -10) & (a < 8))


def non_skin(lab: np.ndarray) -> np.ndarray:
    """`drape` colours, bright and not yellowish (paper, sheets, walls, also under a magenta cast), and
    near-black greys: colours no skin or lesion has."""
    light, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)
    bright = ((light > 85) & (b < 3) & (chroma < 25)) | ((light > 93) & (chroma < 10))
    return bright | ((light < 12) & (chroma < 10)) | drape(lab)


def lab8(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* through OpenCV's 8-bit conversion, as float32 (L 0-100, a and b about -128..127)."""
    import cv2

    x = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    return np.stack([x[..., 0] * 100 / 255, x[..., 1] - 128, x[..., 2] - 128], axis=-1)


def grey_strokes(rgb: np.ndarray, contrast: float, max_chroma: float, bright: float, dark: float) -> np.ndarray:
    """Thin strokes (white or black top-hat over a 9x9 square, above `contrast`) that are grey (a*b* chroma
    below `max_chroma`) and near white (L* above `bright`) or near black (below `dark`): text and marks."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
    thin = np.maximum(cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, k), cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, k))
    L = lab8(rgb)
    grey = np.hypot(L[..., 1], L[..., 2]) < max_chroma
    return (thin > contrast) & grey & ((L[..., 0] > bright) | (L[..., 0] < dark))
