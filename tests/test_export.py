"""PatchAlign24 export: its CSV schema, PNG bytes copied as-is, leaked and test rows left out."""
from __future__ import annotations

import csv
import json

import pytest

from builder.cli import main
from builder.export import base_codes
from tests.publish_helpers import build_version, make_store, plant_leak


@pytest.fixture()
def store(shared_data, tmp_path):
    return make_store(shared_data, tmp_path / "store")


def _export(folder, out, *extra) -> int:
    return main(["export", "patchalign", "--version", "1.1", "--folder", str(folder), "--out", str(out), *extra])


def test_export_schema_and_bytes(store, tmp_path):
    folder = build_version(store, tmp_path / "build")
    out = tmp_path / "pa"
    assert _export(folder, out) == 0
    rows = list(csv.DictReader(open(out / "patchalign.csv")))
    assert list(rows[0]) == ["hasher", "high", "low", "fitzpatrick", "disease", "label"]
    want = [r for r in store.records() if r.split in ("train", "validation")]
    assert [r["hasher"] for r in rows] == [f"{r.sample_id}.png" for r in sorted(want, key=lambda r: r.sample_id)]
    by_id = {r.sample_id: r for r in store.records()}
    codes = {int(c["low"]): c["label"] for c in csv.DictReader(open(out / "low_codes.csv"))}
    for row in rows:
        rec = by_id[row["hasher"][:-4]]
        assert (out / "images" / row["hasher"]).read_bytes() == store.read_image_bytes(rec)
        assert row["high"] == str(int(rec.malignant))
        assert row["fitzpatrick"] == {"light": "12", "medium": "34", "dark": "56"}[rec.skin_tone]
        assert codes[int(row["low"])] == row["label"] == rec.disease
    # DDI's joined classes keep their codes whatever the data holds; healthy follows them
    assert [codes[i] for i in range(len(base_codes()))] == base_codes()
    assert codes[len(base_codes()) - 1] == "healthy"


def test_leaked_rows_are_excluded(store, tmp_path):
    victim = plant_leak(store)
    folder = build_version(store, tmp_path / "build")
    out = tmp_path / "pa"
    assert _export(folder, out) == 0
    hashers = {r["hasher"] for r in csv.DictReader(open(out / "patchalign.csv"))}
    assert f"{victim}.png" not in hashers and not (out / "images" / f"{victim}.png").exists()
    report = json.loads((out / "export_report.json").read_text())
    assert report["leaked"][victim] == "lesion_mapped_from_test_source" and report["excluded"]["leaked"] >= 1


def test_existing_output_and_tampered_input_are_refused(store, tmp_path, capsys):
    folder = build_version(store, tmp_path / "build")
    out = tmp_path / "pa"
    assert _export(folder, out) == 0
    assert _export(folder, out) == 2 and "--overwrite" in capsys.readouterr().err
    shard = next((folder / "data" / "healthy").glob("train-*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-10])
    assert _export(folder, out, "--overwrite") == 2
    assert "integrity" in capsys.readouterr().err
