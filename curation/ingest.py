"""Ingest a source folder (DDI layout or Fitzpatrick17k-with-masks layout) into a real StageStore."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from builder.errors import SourceError
from builder.progress import StageSummary, progress
from builder.schema import DDI_TONE_TO_NAME, Record, Rejection, digest, fitzpatrick_to_tone, make_sample_id
from builder.store import StageStore, decode_rgb, encode_png
from curation.masks import MaskError, read_binary_masks, read_sddi_mask

log = logging.getLogger(__name__)
DISEASE_MAP = Path(__file__).resolve().parents[1] / "builder" / "data" / "ddi_disease_map.csv"
SHARD = "ingest"


def load_disease_map(path: Path = DISEASE_MAP) -> dict[str, str]:
    """DDI raw disease name -> the method's joined 65-class name."""
    import polars as pl

    df = pl.read_csv(path)
    return dict(zip(df["ddi_disease"].to_list(), df["joined_disease"].to_list()))


def detect_layout(source: Path) -> str:
    if (source / "ddi_metadata.csv").is_file():
        return "ddi"
    if (source / "metadata.csv").is_file() and (source / "masks").is_dir():
        return "fitz17k"
    raise SourceError(f"{source}: not a recognised source folder; expected ddi_metadata.csv (DDI layout) "
                      "or metadata.csv + masks/ (Fitzpatrick17k layout). Pass --source DIR pointing at one.")


def ingest_source(source: Path, masks: Path | None, out: StageStore, *, source_name: str | None = None,
                  limit: int | None = None) -> StageSummary:
    """Validate every row, write kept photos (PNG) + label maps + Records, reject the rest with reasons."""
    source = Path(source)
    if not source.is_dir():
        raise SourceError(f"--source {source} is not a folder")
    summary = StageSummary("ingest")
    if out.shard_done(SHARD):
        summary.skipped = len(out.records())
        return summary.stop()
    layout = detect_layout(source)
    rows = _ddi_rows(source, masks, source_name or "ddi") if layout == "ddi" else _fitz_rows(source, source_name or "fitz17k")
    if limit is not None:
        rows = rows[:limit]
    records, rejections = [], []
    for row in progress(rows, desc="ingest"):
        rec = _ingest_one(row, source, out)
        if isinstance(rec, Rejection):
            rejections.append(rec)
            summary.reject(rec.reason)
        else:
            records.append(rec)
            summary.done += 1
    out.finish_shard(SHARD, records, rejections)
    return summary.stop()


def _ddi_rows(source: Path, masks: Path | None, name: str) -> list[dict]:
    import polars as pl

    df = pl.read_csv(source / "ddi_metadata.csv", infer_schema_length=0)  # all strings: we validate
    if "malignant" not in df.columns and "malignancy(malig=1)" in df.columns:
        df = df.rename({"malignancy(malig=1)": "malignant"})
    missing = {"DDI_file", "skin_tone", "malignant", "disease"} - set(df.columns)
    if missing:
        raise SourceError(f"{source / 'ddi_metadata.csv'}: missing columns {sorted(missing)}; "
                          f"found {df.columns}")
    disease_map = load_disease_map()
    mask_dir = masks if masks is not None else source / "masks"
    rows = []
    for i, r in enumerate(df.iter_rows(named=True)):
        fname = r["DDI_file"] or ""
        stem = Path(fname).stem
        img = source / fname if (source / fname).is_file() else source / "images" / fname
        rows.append({"row": i + 2, "source_id": f"{name}:{stem}", "image": img,
                     "mask": ("sddi", mask_dir / f"{stem}.npy"), "tone_raw": r["skin_tone"],
                     "malignant_raw": r["malignant"], "disease_raw": r["disease"],
                     "disease": disease_map.get(r["disease"]), "fitzpatrick": None})
    return rows


def _fitz_rows(source: Path, name: str) -> list[dict]:
    import polars as pl

    df = pl.read_csv(source / "metadata.csv", infer_schema_length=0)
    rows = []
    for i, r in enumerate(df.iter_rows(named=True)):
        md5 = r["md5hash"]
        rows.append({"row": i + 2, "source_id": f"{name}:{md5}", "image": source / r["image_file"],
                     "mask": ("binary", source / "masks" / f"{md5}_lesions.png",
                              source / "masks" / f"{md5}_nonskin.png"),
                     "tone_raw": r["fitzpatrick_scale"], "malignant_raw": r["three_partition_label"],
                     "disease_raw": r["label"], "disease": r["label"], "fitzpatrick": r["fitzpatrick_scale"]})
    return rows


def _ingest_one(row: dict, source: Path, out: StageStore) -> Record | Rejection:
    sid, img_path = row["source_id"], Path(row["image"])
    reject = lambda reason, detail: Rejection("ingest", sid, reason, detail, str(img_path))  # noqa: E731
    try:
        tone, fitz = _tone(row)
        malignant = _malignant(row["malignant_raw"])
    except ValueError as e:
        return reject("bad_metadata", f"row {row['row']}: {e}")
    if row["disease"] is None:
        return reject("unmapped_disease", f"row {row['row']}: disease {row['disease_raw']!r} is not in "
                                          f"{DISEASE_MAP.name}; add it to the map")
    if not img_path.resolve().is_relative_to(source.resolve()):
        return reject("path_escapes_source", f"row {row['row']}: {img_path} lies outside {source}")
    if not img_path.is_file():
        return reject("missing_image", f"row {row['row']}: image file {img_path} does not exist")
    try:
        data = img_path.read_bytes()
        rgb = decode_rgb(data)
    except Exception as e:  # PIL raises many types for corrupt files
        return reject("unreadable_image", f"{img_path}: {e}")
    label_map = None
    try:
        label_map = _read_mask(row["mask"], *rgb.shape[:2])
    except MaskError as e:
        return reject(e.reason, e.detail)
    png = data if data.startswith(b"\x89PNG") and _is_rgb_png(data) else encode_png(rgb)
    sample_id = make_sample_id("real", digest(png), {"source_id": sid})
    path = out.put_image(sample_id, png)
    if label_map is not None:
        out.put_mask(sample_id, label_map)
    return Record(sample_id=sample_id, kind="real", skin_tone=tone, malignant=malignant,
                  disease=row["disease"], disease_raw=row["disease_raw"], source_ids=[sid],
                  image_path=path, fitzpatrick=fitz)


def _read_mask(spec: tuple, h: int, w: int) -> np.ndarray | None:
    if spec[0] == "sddi":
        if not spec[1].exists():
            return None  # DDI photos without an sDDI mask stay real images (no lesion donor / base)
        return read_sddi_mask(spec[1], h, w)
    if not spec[1].exists():
        raise MaskError("missing_mask", f"lesion mask {spec[1]} does not exist")
    return read_binary_masks(spec[1], spec[2], h, w)


def _tone(row: dict) -> tuple[str, int | None]:
    raw = (row["tone_raw"] or "").strip()
    if row["fitzpatrick"] is not None:
        if raw not in {"1", "2", "3", "4", "5", "6"}:
            raise ValueError(f"fitzpatrick_scale {raw!r} is not 1-6 (-1 means unknown)")
        return fitzpatrick_to_tone(int(raw)), int(raw)
    if raw not in {"12", "34", "56"}:
        raise ValueError(f"skin_tone {raw!r} is not one of 12, 34, 56")
    return DDI_TONE_TO_NAME[int(raw)], None


def _malignant(raw: str | None) -> bool:
    v = (raw or "").strip().lower()
    if v in {"true", "1", "malignant"}:
        return True
    if v in {"false", "0", "benign", "non-neoplastic"}:
        return False
    raise ValueError(f"malignant {raw!r} is not True/False/1/0")


def _is_rgb_png(data: bytes) -> bool:
    # IHDR colour type byte (offset 25): 2 = truecolour RGB, bit depth (offset 24) 8.
    return len(data) > 26 and data[25] == 2 and data[24] == 8
