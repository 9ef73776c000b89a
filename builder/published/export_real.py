"""The user's own photos in a trainer export (`--real DIR`): every row of their DDI or Fitzpatrick17k
table with a readable photo, in the trainers' DDI encodings (Fitzpatrick17k types 1-2 / 3-4 / 5-6 as DDI's
tone groups 12 / 34 / 56), the photo linked under `images/`, never copied; test when its id is held out."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from builder.core.errors import ExportError
from builder.core.schema import TONE_NAME_TO_DDI

log = logging.getLogger(__name__)

FITZPATRICK_OF_DDI_TONE = {12: 1, 34: 2, 56: 3}  # data_play_ddi.ipynb; each trainer's own: trainers.encode_tones


def table_tones(real: Path, prefix: str) -> dict[str, str]:
    """source id -> tone name of every row of the user's table with a known tone (DDI 12/34/56,
    Fitzpatrick17k types 1-6)."""
    import polars as pl

    from builder.core.schema import DDI_TONE_TO_NAME, fitzpatrick_to_tone
    from curation.source.metadata import find_table

    layout, table = find_table(real)
    df = pl.read_csv(table, infer_schema=False)
    out = {}
    for d in df.iter_rows(named=True):
        if layout == "ddi" and (d.get("skin_tone") or "").strip() in ("12", "34", "56"):
            out[f"{prefix}:{Path(d['DDI_file'].strip()).stem}"] = DDI_TONE_TO_NAME[int(d["skin_tone"])]
        elif layout == "fitz17k":
            fitz = (d.get("fitzpatrick_scale") or d.get("fitzpatrick") or "").strip()
            if fitz in ("1", "2", "3", "4", "5", "6"):
                out[f"{prefix}:{d['md5hash'].strip()}"] = fitzpatrick_to_tone(int(fitz))
    return out


def real_rows(real: Path, out: Path, prefix: str, held: set[str]) -> tuple[list[dict], list[str]]:
    """Every row of the user's DDI table, linked (symlink) under images/: test if held out, else train."""
    import polars as pl

    from curation.source.metadata import find_table

    layout, table = find_table(real)
    if layout == "fitz17k":
        return _fitz_real_rows(real, table, out, prefix, held)
    try:
        df = pl.read_csv(table, infer_schema=False)
    except Exception as e:  # noqa: BLE001 (polars raises several types for a malformed table)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ExportError(f"--real {table}: not a readable CSV table ({first}); fix or re-download it") from None
    mal = next((c for c in ("malignant", "malignancy(malig=1)") if c in df.columns), None)
    if mal is None or not {"DDI_ID", "DDI_file", "skin_tone", "disease"} <= set(df.columns):
        raise ExportError(f"{table}: expected DDI's columns DDI_ID, DDI_file, skin_tone, malignant, disease; "
                          f"found {df.columns}")
    rows, skipped = [], []
    for d in df.iter_rows(named=True):
        row = _real_row(d, mal, real, prefix, held)
        if isinstance(row, str) or os.path.lexists(out / "images" / row["hasher"]):  # why it is left out
            skipped.append(row if isinstance(row, str) else f"{row['hasher']} (named twice)")
            continue
        (out / "images" / row["hasher"]).symlink_to(row.pop("_photo"))
        rows.append(row)
    if skipped:
        log.warning("%d rows of %s have no photo in %s (left out): %s", len(skipped), table, real, skipped[:5])
    return rows, skipped


def _fitz_real_rows(real: Path, table: Path, out: Path, prefix: str, held: set[str]) -> tuple[list[dict], list[str]]:
    """Every row of the user's Fitzpatrick17k table with a known skin type, in the DDI encodings:
    types 1-2 / 3-4 / 5-6 as DDI's tone groups 12 / 34 / 56, `malignant` from its three-partition
    label (benign and non-neoplastic are not malignant), `disease` its label; photos linked."""
    import polars as pl

    from builder.core.schema import fitzpatrick_to_tone

    df = pl.read_csv(table, infer_schema=False)
    if not {"md5hash", "label", "three_partition_label"} <= set(df.columns) or not (
            {"fitzpatrick_scale", "fitzpatrick"} & set(df.columns)):
        raise ExportError(f"{table}: expected Fitzpatrick17k's columns md5hash, fitzpatrick_scale (or "
                          f"fitzpatrick), label, three_partition_label; found {df.columns}")
    scale = "fitzpatrick_scale" if "fitzpatrick_scale" in df.columns else "fitzpatrick"
    rows, skipped = [], []
    for d in df.iter_rows(named=True):
        md5, fitz = (d["md5hash"] or "").strip(), (d[scale] or "").strip()
        photo = _fitz_photo(real, md5, d.get("image_file"))
        if fitz not in {"1", "2", "3", "4", "5", "6"} or photo is None or not _readable(photo):
            skipped.append(md5 or f"line {len(rows) + len(skipped) + 2}")  # unknown type (-1) or no photo
            continue
        (out / "images" / photo.name).symlink_to(photo.resolve())
        tone = TONE_NAME_TO_DDI[fitzpatrick_to_tone(int(fitz))]
        malignant = (d["three_partition_label"] or "").strip() == "malignant"
        rows.append({"DDI_ID": "", "DDI_file": photo.name, "skin_tone": tone, "malignant": malignant,
                     "disease": (d["label"] or "").strip(), "high": int(malignant), "hasher": photo.name,
                     "kind": "real", "sample_id": "", "source_ids": f"{prefix}:{md5}",
                     "_split": "test" if f"{prefix}:{md5}" in held else "train", "_sources": {f"{prefix}:{md5}"},
                     "_type": int(fitz), "_md5": md5, "_nine": (d.get("nine_partition_label") or "").strip(),
                     "_three": (d["three_partition_label"] or "").strip(),
                     "_qc": d.get("qc") or d.get("fitz17k_qc") or "",
                     "_url": d.get("url") or d.get("original_url") or ""})
    if skipped:
        log.warning("%d rows of %s have no known skin type or no readable photo in %s (left out): %s",
                    len(skipped), table, real, skipped[:5])
    return rows, skipped


def _fitz_photo(real: Path, md5: str, image_file: str | None) -> Path | None:
    names = ([image_file.strip()] if (image_file or "").strip()
             else [f"images/{md5}{s}" for s in (".jpg", ".png", ".jpeg")])
    return next((real / n for n in names if md5 and (real / n).is_file()), None)


def _real_row(d: dict, mal: str, real: Path, prefix: str, held: set[str]) -> dict | str:
    """One CSV row of the user's DDI table (with `_photo`, the resolved photo to link), or the reason it
    is left out: a name that is not one file in the folder (`../x`), no readable photo, bad values."""
    from builder.core.layout import is_file_name

    name = (d["DDI_file"] or "").strip()
    label = name or f"DDI_ID {d['DDI_ID']}"
    if not is_file_name(name):
        return f"{label} (not a file name in the folder)"
    photo = next((p for p in (real / name, real / "images" / name) if p.is_file()), None)
    if photo is None or not _readable(photo):  # their loaders crash on an unreadable file
        return label
    try:
        tone, malignant = int(d["skin_tone"]), (d[mal] or "").strip().lower() in ("true", "1")
        fitzpatrick, disease = FITZPATRICK_OF_DDI_TONE[tone], (d["disease"] or "").strip()
    except (KeyError, ValueError, TypeError):
        return f"{label} (skin_tone {d['skin_tone']!r} is not 12, 34 or 56)"
    if not disease:
        return f"{label} (no disease)"
    sid = f"{prefix}:{Path(name).stem}"
    return {"DDI_ID": d["DDI_ID"], "DDI_file": name, "skin_tone": tone, "malignant": malignant,
            "disease": disease, "high": int(malignant), "fitzpatrick": fitzpatrick, "hasher": name,
            "kind": "real", "sample_id": "", "source_ids": sid, "_split": "test" if sid in held else "train",
            "_sources": {sid}, "_photo": photo.resolve()}


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types for corrupt files
        return False
