"""A Fitzpatrick17k build evaluated on real photos: `--real` takes a Fitzpatrick17k folder, its rows
join both CSVs in the trainers' DDI encodings (types 1-2/3-4/5-6 as tone groups 12/34/56), the
test CSV holds the held-out real photos only, and no train row derives from them."""
from __future__ import annotations

import csv
import json

import pytest

from builder.cli import main
from tests.publish_helpers import build_version, make_store


@pytest.fixture()
def version(shared_data, tmp_path):
    store = make_store(shared_data, tmp_path / "store")
    test = sorted({s for r in store.records() if r.split == "test" for s in r.source_ids})
    (tmp_path / "test_ids.txt").write_text("\n".join(test) + "\n")
    return build_version(store, tmp_path / "build"), set(test), tmp_path / "test_ids.txt"


def test_real_fitzpatrick17k_rows_in_both_csvs(version, shared_data, tmp_path):
    folder, test_ids, ids_file = version
    real = shared_data / "fitz17k_lesions"
    out = tmp_path / "fa"
    assert main(["export", "fairdisco", "--version", "1.1", "--folder", str(folder), "--out", str(out),
                 "--real", str(real), "--test-ids", str(ids_file)]) == 0
    table = {r["md5hash"]: r for r in csv.DictReader(open(real / "metadata.csv"))}
    train, test = (list(csv.DictReader(open(out / f))) for f in ("train.csv", "test.csv"))
    assert {r["kind"] for r in test} == {"real"}
    assert {r["source_ids"] for r in test} == test_ids  # every held-out photo, as a real row
    reals = [r for r in train + test if r["kind"] == "real"]
    assert len(reals) == sum(t["fitzpatrick_scale"] in set("123456") for t in table.values())
    for r in reals:
        src = table[r["source_ids"].split(":", 1)[1]]
        group = {"1": 12, "2": 12, "3": 34, "4": 34, "5": 56, "6": 56}[src["fitzpatrick_scale"]]
        assert int(r["skin_tone"]) == group and int(r["fitzpatrick"]) == {12: 1, 34: 2, 56: 3}[group]
        assert r["high"] == str(int(src["three_partition_label"] == "malignant")) and r["disease"] == src["label"]
        assert (out / "images" / r["hasher"]).is_symlink()  # linked, never copied
    for r in train:
        assert not set(r["source_ids"].split(";")) & test_ids, r["hasher"]
    report = json.loads((out / "export_report.json").read_text())
    assert report["test_by_kind"] == {"real": len(test_ids)}
