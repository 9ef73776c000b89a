"""Seeded skin grain over a smooth fill (shared by the Telea and exemplar fills)."""
from __future__ import annotations

import numpy as np


def add_grain(filled: np.ndarray, crop: np.ndarray, mask: np.ndarray, strength: float,
              seed: int) -> np.ndarray:
    """Seeded noise inside the mask with the surrounding skin's fine-detail amplitude.

    Telea leaves a smooth blob; a classifier can learn "smooth patch = healthy synthetic" as a
    shortcut. Matching the ring's high-frequency spread (per channel) removes that tell.
    """
    import cv2

    img = crop.astype(np.float32)
    detail = img - cv2.GaussianBlur(img, (0, 0), 1.5)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    ring = cv2.dilate(mask.astype(np.uint8), k).astype(bool) & ~mask
    if ring.sum() < 16:
        return filled
    std = detail[ring].std(axis=0)  # (3,)
    rng = np.random.default_rng(seed)
    # One luminance-like field scaled per channel keeps the grain colour-neutral, as skin texture is.
    field = cv2.GaussianBlur(rng.standard_normal(mask.shape).astype(np.float32), (0, 0), 0.7)
    field /= max(float(field.std()), 1e-6)
    noisy = filled.astype(np.float32) + strength * field[..., None] * std[None, None, :]
    out = filled.copy()
    out[mask] = np.clip(np.rint(noisy[mask]), 0, 255).astype(np.uint8)
    return out
