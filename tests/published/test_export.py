"""PatchAlign24 export without real rows: its DDI CSV encodings, PNG bytes copied as-is, leaked rows left out."""
from __future__ import annotations

import csv
import json

import pytest

from builder.cli import main
from builder.published.export import CSV_COLUMNS, raw_ddi_diseases
from tests.publish_helpers import build_version, copy_published, plant_leak


@pytest.fixture()
def store(fitz_v11, tmp_path):
    """A writable copy of the session's 20-photo store (`build_version` publishes it after a change)."""
    return copy_published(fitz_v11, tmp_path / "copy")[0]


def _export(folder, out, *extra) -> int:
    return main(["export", "patchalign", "--version", "1.1", "--folder", str(folder), "--out", str(out), *extra])


def test_export_schema_and_bytes(fitz_v11, tmp_path):
    store, folder = fitz_v11  # read only
    lesions = tmp_path / "lesions"
    assert _export(folder, lesions) == 0  # default: lesion rows only, the trainers' task
    lesion_rows = list(csv.DictReader(open(lesions / "train.csv"))) + list(csv.DictReader(open(lesions / "test.csv")))
    assert lesion_rows and all(r["disease"] != "healthy" and r["kind"] != "healthy" for r in lesion_rows)
    report = json.loads((lesions / "export_report.json").read_text())
    assert report["excluded"]["healthy"] == sum(r.disease == "healthy" for r in store.records()) > 0
    assert "--include-healthy" in (lesions / "TRAINING.md").read_text()
    out = tmp_path / "pa"
    assert _export(folder, out, "--include-healthy") == 0
    assert "healthy" in {r["kind"] for r in csv.DictReader(open(out / "train.csv"))}
    rows = list(csv.DictReader(open(out / "train.csv")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    want = [r for r in store.records() if r.split in ("train", "validation")]
    assert [r["hasher"] for r in rows] == [f"{r.sample_id}.png" for r in sorted(want, key=lambda r: r.sample_id)]
    test_rows = list(csv.DictReader(open(out / "test.csv")))  # no --real: the test-split synthetics
    assert {r["hasher"][:-4] for r in test_rows} == {r.sample_id for r in store.records() if r.split == "test"}
    by_id = {r.sample_id: r for r in store.records()}
    codes = {c["disease"]: int(c["low"]) for c in csv.DictReader(open(out / "low_codes.csv"))}
    for row in rows + test_rows:
        rec = by_id[row["hasher"][:-4]]
        assert (out / "images" / row["hasher"]).read_bytes() == store.read_image_bytes(rec)
        assert row["high"] == str(int(rec.malignant)) and row["malignant"] == str(bool(rec.malignant))
        assert row["fitzpatrick"] == {"light": "1", "medium": "3", "dark": "5"}[rec.skin_tone]  # PatchAlign24's
        assert row["skin_tone"] == {"light": "12", "medium": "34", "dark": "56"}[rec.skin_tone]
        assert row["disease"] == (rec.disease_raw or rec.disease) and codes[row["disease"]] == int(row["low"])
        assert row["source_ids"] == ";".join(rec.source_ids)
    # raw DDI names keep PatchAlign24's codes whatever the data holds; healthy follows them
    assert [n for n, i in sorted(codes.items(), key=lambda kv: kv[1])][:78] == raw_ddi_diseases()
    assert codes["healthy"] == 78


def test_leaked_rows_are_excluded(store, tmp_path):
    victim = plant_leak(store)
    folder = build_version(store, tmp_path / "build")
    out = tmp_path / "pa"
    assert _export(folder, out) == 0
    hashers = {r["hasher"] for r in csv.DictReader(open(out / "train.csv"))}
    assert f"{victim}.png" not in hashers and not (out / "images" / f"{victim}.png").exists()
    report = json.loads((out / "export_report.json").read_text())
    assert report["leaked"][victim] == "lesion_mapped_from_test_source" and report["excluded"]["leaked"] >= 1


def test_existing_output_and_tampered_input_are_refused(fitz_v11, tmp_path, capsys):
    _, folder = copy_published(fitz_v11, tmp_path / "copy")  # a shard gets cut below
    out = tmp_path / "pa"
    assert _export(folder, out) == 0
    assert _export(folder, out) == 2 and "--overwrite" in capsys.readouterr().err
    shard = next((folder / "data" / "healthy").glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    assert _export(folder, out, "--overwrite") == 2
    assert "integrity" in capsys.readouterr().err
