"""ImageFolder and WebDataset hand-offs: the version's own splits, lesion rows by default, PNG bytes
as published, read back by the loaders the field uses (datasets' imagefolder, webdataset)."""
from __future__ import annotations

import json

import pytest

from builder.cli import main
from tests.publish_helpers import build_version, make_store


@pytest.fixture(scope="module")
def version(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("handoffs")
    store = make_store(shared_data, root / "store")
    return build_version(store, root / "build"), store


def _export(folder, fmt, out, *extra) -> int:
    return main(["export", fmt, "--version", "1.1", "--folder", str(folder), "--out", str(out), *extra])


def _lesions(store):
    return {r.sample_id: r for r in store.records() if r.disease != "healthy"}


def test_imagefolder_loads_with_datasets(version, tmp_path):
    from datasets import load_dataset

    folder, store = version
    out = tmp_path / "if"
    assert _export(folder, "imagefolder", out) == 0
    want = _lesions(store)
    ds = load_dataset("imagefolder", data_dir=str(out))
    assert {s: ds[s].num_rows for s in ds} == {s: sum(r.split == s for r in want.values())
                                                for s in ("train", "validation", "test") if any(
                                                    r.split == s for r in want.values())}
    for split in ds:
        for row in ds[split]:
            rec = want[row["sample_id"]]
            assert rec.split == split and row["label"] == ("malignant" if rec.malignant else "benign")
    for png in out.glob("*/*/*.png"):
        rec = want[png.stem]
        assert png.read_bytes() == store.read_image_bytes(rec) and png.parent.name == row_label(rec)
    # segmentation masks: a parallel tree outside the split folders, named in the metadata
    masks = sorted(out.glob("masks/*/*/*.png"))
    assert {p.stem for p in masks} == {sid for sid, r in want.items() if r.mask_path}
    assert all(p.read_bytes() == store.read_mask_bytes(want[p.stem]) for p in masks)
    for split in ds:
        for row in ds[split]:
            mask_file = f"masks/{split}/{row_label(want[row['sample_id']])}/{row['sample_id']}.png"
            assert row["mask_file"] == (mask_file if want[row["sample_id"]].mask_path else "")


def row_label(rec) -> str:
    return "malignant" if rec.malignant else "benign"


def test_webdataset_shards_stream_back_and_are_deterministic(version, tmp_path):
    wds = pytest.importorskip("webdataset")
    folder, store = version
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert _export(folder, "webdataset", out, "--shard-count", "5", "--label", "skin_tone",
                       "--include-healthy") == 0
    tars = sorted(p.name for p in a.glob("*.tar"))
    assert tars == sorted(p.name for p in b.glob("*.tar")) and len(tars) > 3  # several shards per split
    assert all((a / t).read_bytes() == (b / t).read_bytes() for t in tars)  # same version, same bytes
    names = json.loads((a / "labels.json").read_text())["names"]
    recs = {r.sample_id: r for r in store.records()}
    seen = set()
    for sample in wds.WebDataset([str(a / t) for t in tars], shardshuffle=False):
        meta = json.loads(sample["json"])
        rec = recs[sample["__key__"]]
        expected = "healthy" if rec.disease == "healthy" else rec.skin_tone
        assert names[int(sample["cls"])] == expected and meta["split"] == rec.split
        assert sample["png"] == store.read_image_bytes(rec)
        assert sample.get("mask.png") == store.read_mask_bytes(rec)  # the row's mask, when it has one
        seen.add(sample["__key__"])
    assert seen == set(recs)  # --include-healthy: every row once


def test_trainer_options_are_refused_for_generic_formats(version, tmp_path, capsys):
    folder, _ = version
    assert _export(folder, "imagefolder", tmp_path / "x", "--holdout-seed", "36") == 2
    assert "--holdout-seed: only for the trainer exports" in capsys.readouterr().err
