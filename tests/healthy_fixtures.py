"""Real stores for the healthy tests and benchmark: Fitzpatrick17k photos + masks, sDDI masks on synthetic photos."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from builder.core.schema import Record, digest, fitzpatrick_to_tone, make_sample_id
from builder.core.store import StageStore, encode_png
from curation.source.masks import read_binary_masks, read_sddi_mask


def fitz17k_real_store(data: Path, out: StageStore, limit: int | None = None) -> list[Record]:
    """Write the Fitzpatrick17k lesion photos (read in place) as real records with label maps."""
    folder = data / "fitz17k_lesions"
    rows = sorted(csv.DictReader((folder / "metadata.csv").open()), key=lambda r: r["md5hash"])
    records = []
    for row in rows[:limit]:
        with Image.open(folder / row["image_file"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        lm = read_binary_masks(folder / row["mask_lesions"], folder / row["mask_nonskin"], h, w)
        records.append(_put_real(out, rgb, lm, f"fitz17k:{row['md5hash']}",
                                 int(row["fitzpatrick_scale"]), row["label"],
                                 row["three_partition_label"] == "malignant"))
    out.finish_shard("fitz17k", records, [])
    return records


def sddi_real_store(data: Path, out: StageStore, stems: list[str], size=(300, 400)) -> list[Record]:
    """sDDI label maps resized onto synthetic skin photos (no DDI photo may exist here)."""
    records = []
    for i, stem in enumerate(stems):
        h, w = size
        rng = np.random.default_rng(i)
        base = np.array([200, 150, 120]) * rng.uniform(0.4, 1.0)
        rgb = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        lm = read_sddi_mask(data / "sddi_masks" / f"{stem}.npy", h, w)
        rgb[lm == 1] = (90, 40, 40)  # a dark "lesion" so inpainting visibly changes it
        records.append(_put_real(out, rgb, lm, f"ddi:{stem}", 2 * (i % 3) + 1, "melanoma", True))
    out.finish_shard("sddi", records, [])
    return records


def _put_real(out: StageStore, rgb: np.ndarray, lm: np.ndarray, source_id: str, fitz: int,
              disease: str, malignant: bool) -> Record:
    png = encode_png(rgb, compress_level=1)
    sid = make_sample_id("real", digest(png), {"source_id": source_id})
    out.put_image(sid, png)
    out.put_mask(sid, lm)
    return Record(sample_id=sid, kind="real", skin_tone=fitzpatrick_to_tone(fitz), malignant=malignant,
                  disease=disease, source_ids=[source_id], image_path=f"images/{sid}.png",
                  fitzpatrick=fitz)
