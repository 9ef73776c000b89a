"""Mask readers: sDDI `.npy` label maps and binary lesion/non-skin PNGs, both to one uint8 label map."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.core.errors import MaskError  # noqa: F401 (callers import it from here too)
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN, LABEL_VALUES


SDDI_SHAPE = (256, 256)  # sDDI publishes every label map at 256x256, whatever the photo's aspect


def check_mask_shape(path: Path, shape: tuple[int, int], height: int, width: int, *,
                     sddi: bool = False) -> None:
    """A mask must be the sDDI 256x256 form (`.npy` only) or have the photo's aspect ratio, up to the one
    pixel of rounding a resize leaves on the smaller of the two (|mh*w - mw*h| <= the larger one's
    h + w); anything else would be stretched onto the wrong pixels."""
    mh, mw = shape
    if (sddi and (mh, mw) == SDDI_SHAPE) or abs(mh * width - mw * height) <= max(mh + mw, height + width):
        return
    form = "neither the sDDI 256x256 form nor" if sddi else "not"
    raise MaskError("mask_aspect_mismatch", f"{path}: mask is {mw}x{mh} px, photo {width}x{height} px: {form} "
                                            "the photo's aspect ratio; export the mask at the photo's size")


def resize_nearest(label_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (label values must never blend)."""
    import cv2

    if label_map.shape == (height, width):
        return label_map
    return cv2.resize(label_map, (width, height), interpolation=cv2.INTER_NEAREST)


def read_sddi_mask(path: str | Path, height: int, width: int) -> np.ndarray:
    """An sDDI label map (int 0-4, usually 256x256) resized to the photo's (height, width)."""
    path = Path(path)
    try:
        raw = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for a corrupt file
        raise MaskError("unreadable_mask", f"{path}: cannot read as .npy ({e})") from e
    if raw.ndim != 2 or not np.issubdtype(raw.dtype, np.integer):
        raise MaskError("bad_mask_shape", f"{path}: expected a 2-D integer label map, got "
                                          f"shape {raw.shape} dtype {raw.dtype}")
    bad = np.setdiff1d(np.unique(raw), LABEL_VALUES)
    if bad.size:
        raise MaskError("unknown_label_values", f"{path}: label values {bad.tolist()} are not sDDI "
                                                f"labels {list(LABEL_VALUES)}")
    check_mask_shape(path, raw.shape, height, width, sddi=True)
    return _check_lesion(path, resize_nearest(raw.astype(np.uint8), height, width))


def read_binary_masks(lesions: str | Path, nonskin: str | Path | None, height: int, width: int) -> np.ndarray:
    """Binary PNG masks (0/255; `<id>_lesions.png` and optional `<id>_nonskin.png`) -> label map.

    Lesion pixels become 1, non-skin 0, everything else skin (4). A lesion pixel marked non-skin
    stays lesion: annotators drew lesions deliberately, non-skin regions coarsely.
    """
    les = _read_binary(Path(lesions), height, width)
    out = np.full((height, width), LABEL_SKIN, np.uint8)
    if nonskin is not None and Path(nonskin).exists():
        out[_read_binary(Path(nonskin), height, width)] = LABEL_BACKGROUND
    out[les] = LABEL_LESION
    return _check_lesion(Path(lesions), out)


def _read_binary(path: Path, height: int, width: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("L"))
    except Exception as e:
        raise MaskError("unreadable_mask", f"{path}: cannot read as an image ({e})") from e
    bad = np.setdiff1d(np.unique(arr), (0, 255))
    if bad.size:
        raise MaskError("unknown_label_values", f"{path}: binary mask has values {bad[:5].tolist()}..., "
                                                "expected only 0 and 255")
    check_mask_shape(path, arr.shape, height, width)
    return resize_nearest((arr > 127).astype(np.uint8), height, width).astype(bool)


def _check_lesion(path: Path, label_map: np.ndarray) -> np.ndarray:
    if not (label_map == LABEL_LESION).any():
        raise MaskError("empty_lesion", f"{path}: the mask has no lesion pixels (label {LABEL_LESION})")
    return label_map


# -- automatic masks: the files `generate masks` writes and ingest reads back ------------------------
AUTO_INDEX = "auto_masks.jsonl"  # one line per photo considered: accepted (file written) or rejected


def auto_mask_file(stem: str) -> str:
    """File name of an automatic mask: `<stem>.npy`, the sDDI form (labels 0-4) at the photo's size."""
    return f"{stem}.npy"


def write_label_map(path: str | Path, label_map: np.ndarray) -> None:
    """Write a label map as sDDI `.npy` (uint8, values 0-4), atomically; `read_sddi_mask` reads it back."""
    import io

    from builder.core.store import atomic_write

    lm = np.asarray(label_map)
    bad = np.setdiff1d(np.unique(lm), LABEL_VALUES)
    if lm.ndim != 2 or bad.size:
        raise ValueError(f"{path}: expected a 2-D label map with values in {LABEL_VALUES}, got shape "
                         f"{lm.shape} and values {bad.tolist()}")
    buf = io.BytesIO()
    np.save(buf, lm.astype(np.uint8), allow_pickle=False)
    atomic_write(Path(path), buf.getvalue())


def write_auto_index(folder: str | Path, entries: list[dict]) -> Path:
    """`auto_masks.jsonl`: per photo `source_id, file, method, version, confidence, accepted, reason, detail`."""
    import json

    from builder.core.store import atomic_write

    path = Path(folder) / AUTO_INDEX
    body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in sorted(entries, key=lambda e: e["source_id"]))
    atomic_write(path, body.encode())
    return path


def read_auto_index(folder: str | Path | None) -> dict[str, dict]:
    """source_id -> its `auto_masks.jsonl` entry (empty when the folder has no index)."""
    import json

    path = Path(folder) / AUTO_INDEX if folder else None
    if path is None or not path.is_file():
        return {}
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {e["source_id"]: e for e in entries}
