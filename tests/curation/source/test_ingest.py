"""Ingest on the real DDI metadata and sDDI masks, the real Fitzpatrick17k tables, and crafted bad inputs."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from builder.core.errors import SourceError
from builder.core.store import StageStore
from curation.source.ingest import ingest_source, read_counts
from curation.source.metadata import read_source_table

WITH_MASK = ["000001", "000006", "000007", "000009", "000010", "000011"]
NO_MASK = ["000002", "000003"]


def _photos(shared_data):
    return sorted((shared_data / "fitz17k_lesions" / "images").iterdir())


def _write_photo(src: Path, dst: Path, size=(320, 240)):
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("RGB").resize(size).save(dst)


@pytest.fixture
def ddi_source(tmp_path, shared_data):
    """The published DDI table as is, real skin photos standing in for 8 DDI images (DDI is not here)."""
    src = tmp_path / "ddi"
    src.mkdir()
    shutil.copy(shared_data / "ddi_metadata.csv", src / "ddi_metadata.csv")
    for stem, photo in zip(WITH_MASK + NO_MASK, _photos(shared_data)):
        _write_photo(photo, src / f"{stem}.png")
    return src


def test_real_ddi_metadata_and_masks(ddi_source, shared_data, tmp_path):
    store = StageStore(tmp_path / "real")
    s = ingest_source(ddi_source, shared_data / "sddi_masks", store)
    recs = {r.source_ids[0]: r for r in store.records()}
    assert sorted(recs) == sorted(f"ddi:{x}" for x in WITH_MASK + NO_MASK)
    counts = read_counts(store)
    assert counts["in"] == 653 == counts["kept"] + counts["rejected"]
    assert counts["by_reason"] == {"missing_image": 645} and s.done == 8
    r1 = recs["ddi:000001"]  # published row: 56, TRUE, melanoma-in-situ
    assert (r1.skin_tone, r1.malignant, r1.disease, r1.disease_raw) == ("dark", True, "melanoma", "melanoma-in-situ")
    assert recs["ddi:000010"].skin_tone == "medium" and recs["ddi:000010"].disease == "basal cell carcinoma"
    for stem in WITH_MASK:
        lm = store.read_mask(recs[f"ddi:{stem}"].sample_id)
        assert lm.shape == (240, 320) and set(np.unique(lm)) <= {0, 1, 2, 3, 4} and (lm == 1).any()
    assert not store.mask_path(recs["ddi:000002"].sample_id).exists()
    rej = {r.item_id: r for r in store.rejections()}
    assert "ddi_metadata.csv line 5, column DDI_file: value '000004.png'" in rej["ddi:000004"].detail
    # A rerun resumes: the shard is done, nothing is redone.
    assert ingest_source(ddi_source, shared_data / "sddi_masks", store).skipped == 8


def test_older_malignancy_column(ddi_source, shared_data, tmp_path):
    df = pl.read_csv(ddi_source / "ddi_metadata.csv", infer_schema=False)
    df = df.with_columns(pl.col("malignant").replace({"TRUE": "1", "FALSE": "0"})).rename(
        {"malignant": "malignancy(malig=1)"})
    df.write_csv(ddi_source / "ddi_metadata.csv")
    t = read_source_table(ddi_source, shared_data / "sddi_masks")
    got = {r.source_id: r.malignant for r in t.rows}
    assert got["ddi:000001"] is True and got["ddi:000002"] is True and len(got) == 8
    malignant = {r.source_id for r in t.rows if r.malignant}
    pub = pl.read_csv(shared_data / "ddi_metadata.csv").filter(pl.col("malignant"))
    assert malignant == {f"ddi:{f[:6]}" for f in pub["DDI_file"]} & set(got)


def _bad_table(src: Path, shared_data: Path) -> dict[str, str]:
    """Crafted rows, each with the reason it must be rejected for."""
    rows = [  # DDI_ID, DDI_file, skin_tone, malignant, disease
        (1, "000001.png", 56, "TRUE", "melanoma-in-situ"),        # fine
        (2, "000002.png", 99, "TRUE", "melanoma-in-situ"),        # unknown skin tone
        (3, "000003.png", 12, "maybe", "melanoma-in-situ"),       # bad malignancy
        (4, "000004.png", 12, "FALSE", "made-up-disease"),        # unmapped disease
        (5, "000005.png", 12, "FALSE", "melanocytic-nevi"),       # image missing
        (6, "000006.png", 12, "FALSE", "melanocytic-nevi"),       # unreadable image
        (7, "../outside.png", 12, "FALSE", "melanocytic-nevi"),   # escapes the source root
        (8, "000001.png", 34, "FALSE", "melanocytic-nevi"),       # duplicate id (same file)
        (9, "000009.png", "", "FALSE", "melanocytic-nevi"),       # missing value
        (10, "000010.png", 34, "FALSE", "melanocytic-nevi"),      # mask with bad label values
        (1, "000012.png", 34, "FALSE", "melanocytic-nevi"),       # duplicate DDI_ID (other file)
    ]
    lines = [",DDI_ID,DDI_file,skin_tone,malignant,disease"]
    lines += [f"{i},{a},{b},{c},{d},{e}" for i, (a, b, c, d, e) in enumerate(rows)]
    (src / "ddi_metadata.csv").write_text("\n".join(lines) + "\n")
    photos = _photos(shared_data)
    for stem, p in zip(("000001", "000002", "000003", "000004", "000009", "000010", "000099", "000012"), photos):
        _write_photo(p, src / f"{stem}.png")
    (src / "000006.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _write_photo(photos[0], src.parent / "outside.png")
    masks = src / "masks"
    masks.mkdir()
    for stem in ("000001", "000006", "000010", "000500"):
        shutil.copy(shared_data / "sddi_masks" / "000001.npy", masks / f"{stem}.npy")
    np.save(masks / "000010.npy", np.full((256, 256), 7, np.int32))
    return {"ddi:000002": "unknown_skin_tone", "ddi:000003": "bad_malignancy", "ddi:000004": "unmapped_disease",
            "ddi:000005": "missing_image", "ddi:000006": "unreadable_image", "ddi:outside": "path_escapes_root",
            "ddi:000001": "duplicate_id", "ddi:000009": "missing_value", "ddi:000010": "unknown_label_values",
            "ddi:000012": "duplicate_id", "mask:000500.npy": "mask_without_image", "image:000099.png": "image_without_metadata"}


def test_crafted_bad_inputs_each_with_its_reason(tmp_path, shared_data):
    src = tmp_path / "src"
    src.mkdir()
    want = _bad_table(src, shared_data)
    store = StageStore(tmp_path / "real")
    ingest_source(src, None, store)
    got = {(r.item_id, r.reason) for r in store.rejections()}
    assert got == set(want.items())
    assert [r.source_ids for r in store.records()] == [["ddi:000001"]]
    counts = read_counts(store)
    assert counts["in"] == 11 + 2 == counts["kept"] + counts["rejected"]
    detail = {r.reason: r.detail for r in store.rejections()}
    assert detail["unknown_skin_tone"].startswith("ddi_metadata.csv line 3, column skin_tone: value '99'")
    assert "12, 34 or 56" in detail["unknown_skin_tone"]
    assert "'made-up-disease,<joined name>'" in detail["unmapped_disease"]
    assert {r.detail.split(": ", 1)[0] for r in store.rejections() if r.reason == "duplicate_id"} == {
        "ddi_metadata.csv line 9", "ddi_metadata.csv line 12, column DDI_ID"}
    assert all("repeats line 2" in r.detail for r in store.rejections() if r.reason == "duplicate_id")
    assert "outside the source folder" in detail["path_escapes_root"]


def test_missing_columns_fail_with_file_and_fix(tmp_path):
    (tmp_path / "ddi_metadata.csv").write_text("DDI_ID,DDI_file,skin_tone,disease\n1,000001.png,12,melanoma\n")
    with pytest.raises(SourceError, match=r"ddi_metadata.csv: missing columns \['malignant'\].*malignancy"):
        read_source_table(tmp_path)
    with pytest.raises(SourceError, match="no metadata table found; expected ddi_metadata.csv"):
        read_source_table(tmp_path / "..")


def test_fitzpatrick17k_lesions_with_masks(shared_data, tmp_path):
    store = StageStore(tmp_path / "real")
    ingest_source(shared_data / "fitz17k_lesions", None, store, limit=6)
    recs = store.records()
    meta = pl.read_csv(shared_data / "fitz17k_lesions" / "metadata.csv").head(6)
    want = {f"fitz17k:{m}": (f, t == "malignant") for m, f, t in
            zip(meta["md5hash"], meta["fitzpatrick_scale"], meta["three_partition_label"])}
    tone = {1: "light", 2: "light", 3: "medium", 4: "medium", 5: "dark", 6: "dark"}
    assert len(recs) == 6
    for r in recs:
        fitz, malignant = want[r.source_ids[0]]
        assert (r.fitzpatrick, r.skin_tone, r.malignant) == (fitz, tone[fitz], malignant)
        lm = store.read_mask(r.sample_id)
        assert (lm == 1).any() and (lm == 4).any()


def test_fitzpatrick17k_published_table(shared_data, tmp_path):
    """The 16,577-row published table: unknown scale (-1) rejected; images found for the 39 we have."""
    src = tmp_path / "fitz"
    src.mkdir()
    shutil.copy(shared_data / "fitzpatrick17k.csv", src)  # copies: links out of the folder are refused
    shutil.copytree(shared_data / "fitz17k_lesions" / "images", src / "images")
    t = read_source_table(src)
    reasons = pl.Series([r.reason for r in t.rejections]).value_counts()
    by = dict(zip(reasons[:, 0], reasons[:, 1]))
    assert by["unknown_skin_tone"] == 565
    assert len(t.rows) == 39 and t.n_in == 16577 == len(t.rows) + len(t.rejections)
    assert all(r.mask is None for r in t.rows)  # no masks folder: real images without masks
    missing = next(r for r in t.rejections if r.reason == "missing_image")
    assert ", column md5hash: value '" in missing.detail and "images/" in missing.detail
