"""Decode the evaluated images (published rows and real photos) into RGB arrays."""
from __future__ import annotations

import io

import numpy as np


def decode_images(items) -> list[np.ndarray]:
    """Each item's encoded bytes (`item.data`) as an 8-bit RGB array."""
    from PIL import Image

    return [np.asarray(Image.open(io.BytesIO(i.data)).convert("RGB")) for i in items]
