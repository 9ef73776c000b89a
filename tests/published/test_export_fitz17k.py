"""A Fitzpatrick17k build evaluated on real photos: `--real` takes a Fitzpatrick17k folder, its rows
join both CSVs in the trainers' DDI encodings (types 1-2/3-4/5-6 as tone groups 12/34/56), the
test CSV holds the held-out real photos only, and no train row derives from them."""
from __future__ import annotations

import csv
import json
import os

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


def test_their_fitzpatrick17k_layout(version, shared_data, tmp_path, monkeypatch):
    """Their Fitzpatrick17k script with TRAINING.md's edits: the table first, then our split, then
    `os.path.join(image_dir, hasher) + '.jpg'` read with skimage; `high` and `fitzpatrick - 1` as targets."""
    import re

    pd = pytest.importorskip("pandas")
    io = pytest.importorskip("skimage.io")
    folder, test_ids, ids_file = version
    real = shared_data / "fitz17k_lesions"
    out = tmp_path / "pa-fitz"
    assert main(["export", "patchalign", "--version", "1.1", "--folder", str(folder), "--out", str(out),
                 "--real", str(real), "--test-ids", str(ids_file), "--layout", "fitzpatrick17k"]) == 0
    edits = re.findall(r"replace\n   `([^`]+)`\n   by\n   `([^`]+)`", (out / "TRAINING.md").read_text())
    assert len(edits) == 3 and all(str(out) in new for _, new in edits)
    monkeypatch.chdir(tmp_path)
    scope = {"pd": pd}
    exec(edits[0][1], scope)
    exec(edits[1][1], scope)
    image_dir = re.search(r"image_dir='([^']+)'", edits[2][1]).group(1)
    df, train, test = scope["df"], scope["train"], scope["test"]
    assert len(df) == len(train) + len(test)
    table = {r["md5hash"]: r for r in csv.DictReader(open(real / "metadata.csv"))}
    import pyarrow.parquet as pq

    published = {row["sample_id"]: row["fitzpatrick"] for f in (folder / "data").rglob("*.parquet")
                 for row in pq.read_table(f, columns=["sample_id", "fitzpatrick"]).to_pylist()}
    for _, r in df.iterrows():
        image = io.imread(os.path.join(image_dir, str(r["hasher"])) + ".jpg")
        assert image.ndim == 3 and image.shape[2] == 3
        assert r["fitzpatrick"] in range(1, 7) and r["high"] == {"benign": 0, "malignant": 1,
                                                                 "non-neoplastic": 2}[r["three_partition_label"]]
        if r["kind"] == "real":
            src = table[r["hasher"]]
            assert str(r["fitzpatrick"]) == src["fitzpatrick_scale"] and r["label"] == src["label"]
            assert r["three_partition_label"] == src["three_partition_label"]
        else:  # a synthetic row carries the type of the photo it was built on (the shard's column)
            assert r["fitzpatrick"] == published[r["hasher"]]
            assert str(r["fitzpatrick"]) in {table[s.split(":", 1)[1]]["fitzpatrick_scale"]
                                             for s in r["source_ids"].split(";")}
    assert set(test["kind"]) == {"real"} and {f"fitz17k:{h}" for h in test["hasher"]} == test_ids
    groups = {(f - 1) // 2 for f in df["fitzpatrick"]}  # their evaluation, random holdout
    assert groups == {(int(t["fitzpatrick_scale"]) - 1) // 2 for t in table.values()
                      if t["fitzpatrick_scale"] in set("123456")}
