"""A DDI-layout source folder for tests: the real `ddi_metadata.csv` and sDDI masks, stand-in photos.

No DDI photo exists here (its terms forbid copying it), so each chosen row gets a stand-in photo
painted from its real sDDI label map: tone-coloured skin with grain, a darker lesion, violet marker
ink, a pale ruler and a dark background, where the mask puts them. Every other row of the real
table stays and is rejected at ingest as `missing_image` (nothing lost).
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from builder.core.store import encode_png

SKIN = {"12": (228, 190, 165), "34": (185, 135, 98), "56": (105, 70, 48)}
LABEL_RGB = {0: (40, 45, 60), 2: (88, 40, 130), 3: (222, 222, 212)}


def stand_in_photo(label_map: np.ndarray, tone: str, seed: int, size: tuple[int, int] = (320, 288)) -> bytes:
    """PNG bytes of a photo whose regions follow `label_map` (resized to `size`, width x height)."""
    import cv2

    w, h = size
    labels = cv2.resize(label_map.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    rng = np.random.default_rng(seed)
    skin = np.array(SKIN[tone], np.float32)
    img = np.empty((h, w, 3), np.float32)
    img[:] = skin
    img[labels == 1] = skin * 0.55 + np.array((40, 10, 10), np.float32)
    for value, rgb in LABEL_RGB.items():
        img[labels == value] = rgb
    img += cv2.GaussianBlur(rng.normal(0, 6, (h, w)).astype(np.float32), (0, 0), 1.0)[..., None]
    return encode_png(np.clip(img, 0, 255).astype(np.uint8))


def make_ddi_folder(shared_data: Path, dst: Path, photos: int = 18) -> tuple[Path, Path, list[str]]:
    """`dst` with the real table and stand-in photos for the first `photos` rows that have a usable
    sDDI mask (skin present), balanced over the three tone groups. Returns (folder, masks, stems)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data / "ddi_metadata.csv", dst / "ddi_metadata.csv")
    masks = shared_data / "sddi_masks"
    per_tone = {t: [] for t in SKIN}
    with open(dst / "ddi_metadata.csv", newline="") as f:
        for row in csv.DictReader(f):
            stem = Path(row["DDI_file"]).stem
            lm = np.load(masks / f"{stem}.npy") if (masks / f"{stem}.npy").is_file() else None
            if lm is not None and (lm == 4).mean() > 0.2 and (lm == 1).any() and \
                    len(per_tone[row["skin_tone"]]) < photos // 3:
                per_tone[row["skin_tone"]].append((stem, lm))
    stems = []
    for tone, chosen in per_tone.items():
        for stem, lm in chosen:
            (dst / f"{stem}.png").write_bytes(stand_in_photo(lm, tone, int(stem)))
            stems.append(stem)
    return dst, masks, sorted(stems)
