"""Source photos: any image mode Pillow opens becomes faithful 8-bit RGB, or a named rejection.

Pillow's own `convert("RGB")` clips 16-bit grayscale (a 16-bit PNG becomes all white) and drops
alpha silently; here 16-bit samples are scaled (v * 255 / 65535, rounded), transparency is a
rejection (the colour under a transparent pixel is undefined), and modes without a defined white
level (32-bit float) are rejected by name instead of guessed.
"""
from __future__ import annotations

import io

import numpy as np

from builder.core.errors import SampleRejected

# Smallest side a source photo may have (the config's `source.min_side_px` default). 64 px is where
# the generators stop working: SD latents are 1/8 of the image (8x8 at 64 px, the least the UNet's
# three downsamplings accept; healthy.crop_size has the same floor), pHash reads a 32x32 DCT that
# needs real detail under it, and lesion mapping keeps 10 px pads to the skin edge. DDI photos and
# Fitzpatrick17k's (smallest side in the real set: 192 px) are well above it.
MIN_SIDE_PX = 64
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


def read_photo(data: bytes, name: str, min_side_px: int = MIN_SIDE_PX) -> np.ndarray:
    """Decode one source photo to an (H, W, 3) uint8 array; raises SampleRejected with a reason."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # PIL raises many types for corrupt files
        raise SampleRejected("unreadable_image", f"{name} cannot be decoded as an image ({e}); "
                                                 "replace the file or remove the row") from e
    with im:
        if getattr(im, "n_frames", 1) > 1:
            raise SampleRejected("multi_frame_image", f"{name} holds {im.n_frames} frames (animation or "
                                                      "multi-page file); save the photo as a single-frame PNG")
        w, h = im.size
        if min(w, h) < min_side_px:
            raise SampleRejected("image_too_small", f"{name} is {w}x{h} px, below the {min_side_px} px "
                                                    "minimum side (source.min_side_px); use the full-size photo")
        return to_rgb8(im, name)


def to_rgb8(im, name: str) -> np.ndarray:
    """An open Pillow image as 8-bit RGB, faithfully (see the module docstring)."""
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode == "I":
        return _gray_to_rgb(_scale_int(np.asarray(im), _bits_of(im, name), name))
    if mode == "F":
        raise SampleRejected("unsupported_image_mode", f"{name} has 32-bit float pixels (mode F), which have "
                                                       "no defined white level; save it as an 8- or 16-bit PNG")
    if mode in _ALPHA or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        clear = int((rgba[..., 3] < 255).sum())
        if clear:
            raise SampleRejected("transparent_pixels", f"{name} has {clear} transparent pixels, whose colour "
                                                       "is undefined; flatten the photo (no alpha) and retry")
        return np.ascontiguousarray(rgba[..., :3])
    try:
        return np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as e:
        raise SampleRejected("unsupported_image_mode", f"{name}: image mode {mode} cannot be converted "
                                                       f"to RGB ({e}); save it as an RGB PNG or JPEG") from e


def _bits_of(im, name: str) -> int:
    """16 for I;16, for a PNG (which has no 32-bit gray) and a 16-bit TIFF; other integer images
    (32-bit TIFF, signed or not) have no white level we could trust, so they are rejected."""
    bits = getattr(im, "tag_v2", {}).get(258) if im.format == "TIFF" else None
    if im.mode in _SIXTEEN_BIT or im.format == "PNG" or bits in (16, (16,)):
        return 16
    raise SampleRejected("unsupported_image_mode", f"{name}: 32-bit integer pixels (mode I); save it as an "
                                                   "8- or 16-bit PNG")


def _scale_int(arr: np.ndarray, bits: int, name: str) -> np.ndarray:
    arr = arr.astype(np.int64)
    top = (1 << bits) - 1
    if arr.size and (arr.min() < 0 or arr.max() > top):
        raise SampleRejected("unsupported_image_mode", f"{name}: pixel values {arr.min()}..{arr.max()} lie "
                                                       f"outside its {bits}-bit range; save it as a 16-bit PNG")
    return ((arr * 255 + top // 2) // top).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
