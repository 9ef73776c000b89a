"""Embedded demo source: a deterministic, DDI-like folder of synthetic skin photos, sDDI masks and metadata.

It exists so `python -m builder build --version 1.1` works with no data, GPU or network, and so
tests have a source with known content. Nothing here is a real patient image.
Layout written (the same layout `--source/--masks` accept for real DDI)::

    <dir>/ddi_metadata.csv      published DDI columns, with the unnamed index column
    <dir>/images/000001.png     RGB photos, 256-512 px a side
    <dir>/masks/000001.npy      sDDI label maps, int32 256x256 (0 bg, 1 lesion, 2 marker, 3 ruler, 4 skin)
"""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np

from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_RULER, LABEL_SKIN
from builder.core.store import encode_png

# (DDI raw disease, malignant, lesion RGB at medium tone, relative size): a spread of the DDI classes.
DISEASES = (
    ("melanocytic-nevi", False, (95, 60, 40), 0.10),
    ("seborrheic-keratosis", False, (120, 90, 60), 0.14),
    ("verruca-vulgaris", False, (170, 140, 110), 0.08),
    ("dermatofibroma", False, (140, 80, 70), 0.07),
    ("basal-cell-carcinoma", True, (200, 130, 130), 0.12),
    ("melanoma-in-situ", True, (45, 30, 25), 0.12),
    ("squamous-cell-carcinoma-in-situ", True, (190, 100, 90), 0.11),
    ("mycosis-fungoides", True, (180, 90, 100), 0.16),
)
# Skin base colours per DDI tone group (12 light, 34 medium, 56 dark).
TONES = {12: (232, 196, 170), 34: (190, 140, 100), 56: (110, 72, 48)}
MASK_SIZE = 256


def synthesize_photo(index: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One photo, its full-resolution label map and its metadata row (pure function of index, seed)."""
    rng = np.random.default_rng([seed, index])
    tone = (12, 34, 56)[index % 3]
    disease, malignant, lesion_rgb, rel = DISEASES[(index // 3) % len(DISEASES)]
    h, w = (int(x) for x in rng.integers(256, 513, size=2) // 8 * 8)
    labels = np.full((h, w), LABEL_SKIN, np.uint8)
    img = _skin(rng, h, w, TONES[tone])
    _background(rng, img, labels)
    cy, cx = _lesion(rng, img, labels, lesion_rgb, tone, rel)
    if rng.random() < 0.35:
        _marker(rng, img, labels, cy, cx, rel * min(h, w))
    if rng.random() < 0.3:
        _ruler(img, labels)
    meta = {"DDI_ID": index + 1, "DDI_file": f"{index + 1:06d}.png", "skin_tone": tone,
            "malignant": malignant, "disease": disease}
    return img, labels, meta


def _skin(rng, h: int, w: int, base: tuple[int, int, int]) -> np.ndarray:
    import cv2

    low = cv2.resize(rng.normal(0, 1, (h // 32 + 2, w // 32 + 2)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    pores = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)
    shade = 1.0 + 0.05 * low[..., None] + 0.03 * pores[..., None]
    tint = np.array(base, np.float32) * (1 + rng.normal(0, 0.03, 3)).astype(np.float32)
    return np.clip(tint * shade, 0, 255).astype(np.uint8)


def _background(rng, img: np.ndarray, labels: np.ndarray) -> None:
    """A dark cloth band along one edge: non-skin background (label 0)."""
    h, w = labels.shape
    band = int(rng.integers(h // 10, h // 5))
    if rng.random() < 0.5:
        sl = (slice(0, band), slice(None))
    else:
        sl = (slice(None), slice(w - band, w))
    img[sl] = (np.array((40, 45, 60)) + rng.normal(0, 4, img[sl].shape)).clip(0, 255).astype(np.uint8)
    labels[sl] = LABEL_BACKGROUND


def _lesion(rng, img, labels, rgb, tone: int, rel: float) -> tuple[int, int]:
    """An irregular blob (noisy polar radius) of the disease's colour, darker on darker skin."""
    import cv2

    h, w = labels.shape
    r0 = rel * min(h, w) * rng.uniform(0.7, 1.2)
    cy = int(rng.integers(int(h * 0.3), int(h * 0.7)))
    cx = int(rng.integers(int(w * 0.3), int(w * 0.6)))
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radii = r0 * (1 + 0.25 * np.convolve(rng.normal(0, 1, 48), np.ones(5) / 5, mode="same"))
    pts = np.stack([cx + radii * np.cos(angles), cy + 0.8 * radii * np.sin(angles)], 1).astype(np.int32)
    blob = np.zeros((h, w), np.uint8)
    cv2.fillPoly(blob, [pts], 1)
    soft = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), 2.0)[..., None]
    # The label covers the whole visible blob, soft edge included, as an annotator would draw it.
    inside = (soft[..., 0] > 0.02) & (labels == LABEL_SKIN)
    scale = {12: 1.1, 34: 1.0, 56: 0.7}[tone]
    colour = np.clip(np.array(rgb, np.float32) * scale + rng.normal(0, 6, (h, w, 3)), 0, 255)
    img[:] = (img * (1 - soft) + colour * soft).astype(np.uint8)
    labels[inside] = LABEL_LESION
    return cy, cx


def _marker(rng, img, labels, cy: int, cx: int, radius: float) -> None:
    """Surgical-ink dots around the lesion (label 2), as on many biopsy photos."""
    import cv2

    ink = np.zeros(labels.shape, np.uint8)
    for a in np.linspace(0, 2 * np.pi, 10, endpoint=False) + rng.uniform(0, 1):
        y, x = int(cy + 1.8 * radius * np.sin(a)), int(cx + 1.8 * radius * np.cos(a))
        cv2.circle(ink, (x, y), 3, 1, -1)
    sel = ink.astype(bool) & (labels == LABEL_SKIN)
    img[sel] = (88, 40, 130)
    labels[sel] = LABEL_MARKER


def _ruler(img, labels) -> None:
    """A pale ruler along the bottom edge with tick marks (label 3)."""
    h, w = labels.shape
    top = h - max(16, h // 12)
    img[top:] = (225, 225, 215)
    img[top:top + (h - top) // 2, ::8] = (30, 30, 30)
    labels[top:] = LABEL_RULER


def write_demo_source(folder: str | Path, count: int, seed: int) -> Path:
    """Write `count` demo photos, masks and ddi_metadata.csv into `folder` (idempotent)."""
    folder = Path(folder)
    stamp = folder / ".demo_source.json"
    want = {"count": count, "seed": seed, "generator": _code_digest()}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return folder
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(count):
        img, labels, meta = synthesize_photo(i, seed)
        stem = meta["DDI_file"][:-4]
        (folder / "images" / meta["DDI_file"]).write_bytes(encode_png(img))
        np.save(folder / "masks" / f"{stem}.npy", _to_sddi(labels))
        rows.append(meta)
    with open(folder / "ddi_metadata.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["", "DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"])
        for j, r in enumerate(rows):
            wr.writerow([j, r["DDI_ID"], r["DDI_file"], r["skin_tone"],
                         "TRUE" if r["malignant"] else "FALSE", r["disease"]])
    stamp.write_text(json.dumps(want))
    return folder


def _to_sddi(labels: np.ndarray) -> np.ndarray:
    """Full-resolution label map -> sDDI form: 256x256 int32, nearest neighbour."""
    import cv2

    return cv2.resize(labels, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_NEAREST).astype(np.int32)


def _code_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
