"""Review contact sheets: per photo its thumbnail, the lesion + skin overlay and the confidence verdict."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_MARKER, LABEL_RULER, LABEL_SKIN

TILE_H = 160
COLUMNS = 3  # photo + overlay pairs per row
# Overlay colours (RGB) and how much of them is mixed in: lesion red, skin green, marker blue, ruler yellow;
# background is darkened so "nothing detected" reads at a glance.
TINT = {LABEL_LESION: ((255, 0, 0), 0.55), LABEL_SKIN: ((0, 200, 0), 0.25), LABEL_MARKER: ((0, 80, 255), 0.6),
        LABEL_RULER: ((255, 220, 0), 0.6)}


@dataclasses.dataclass
class SheetItem:
    title: str
    rgb: np.ndarray
    label_map: np.ndarray | None
    confidence: float | None
    accepted: bool


def overlay(rgb: np.ndarray, label_map: np.ndarray) -> np.ndarray:
    """The photo with each label's tint mixed in and background darkened."""
    out = rgb.astype(np.float32)
    for label, (colour, alpha) in TINT.items():
        m = label_map == label
        out[m] = (1 - alpha) * out[m] + alpha * np.asarray(colour, np.float32)
    out[label_map == LABEL_BACKGROUND] *= 0.35
    return np.clip(out, 0, 255).astype(np.uint8)


def _thumb(rgb: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(TILE_H / h, width / w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.full((TILE_H, width, 3), 255, np.uint8)
    y, x = (TILE_H - small.shape[0]) // 2, (width - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def write_sheet(path: str | Path, items: list[SheetItem], heading: str) -> Path:
    """One PNG: a heading line, then per photo [photo | overlay] with id, confidence and verdict below."""
    from PIL import Image, ImageDraw

    from builder.core.store import atomic_write, encode_png

    tile_w, caption = 200, 30
    rows = max(1, -(-len(items) // COLUMNS))
    sheet = Image.new("RGB", (COLUMNS * (2 * tile_w + 16), 24 + rows * (TILE_H + caption + 8)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), heading, fill=(0, 0, 0))
    for i, it in enumerate(items):
        x, y = (i % COLUMNS) * (2 * tile_w + 16) + 4, 24 + (i // COLUMNS) * (TILE_H + caption + 8)
        sheet.paste(Image.fromarray(_thumb(it.rgb, tile_w)), (x, y))
        right = overlay(it.rgb, it.label_map) if it.label_map is not None else np.full_like(it.rgb, 255)
        sheet.paste(Image.fromarray(_thumb(right, tile_w)), (x + tile_w + 4, y))
        conf = "-" if it.confidence is None else f"{it.confidence:.2f}"
        verdict, colour = ("accepted", (0, 110, 0)) if it.accepted else ("REJECTED", (200, 0, 0))
        draw.text((x, y + TILE_H + 2), it.title[:60], fill=(0, 0, 0))
        draw.text((x, y + TILE_H + 15), f"confidence {conf}  {verdict}", fill=colour)
    path = Path(path)
    atomic_write(path, encode_png(np.asarray(sheet), compress_level=6))
    return path
