"""Both leakage rules at export time, on a tiny hand-made version whose every placement is known.

Photos: ddi:1 train melanoma, ddi:2 test melanoma, ddi:3 test nevus, ddi:4 train nevus; each has its
healthy synthetic. The rows below say where each rule puts them (`curation.leakage`: strict, any
source held out; the paper's, a lesion map's donor and a semantic image's (disease, healthy prompt)
pair). A version is built under one rule, then exported under it and under the other.
"""
from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from builder.cli import main
from builder.core.schema import Generator, Record
from builder.core.store import StageStore, encode_png

PHOTOS = {"ddi:1": ("train", "melanoma", True), "ddi:2": ("test", "melanoma", True),
          "ddi:3": ("test", "nevus", False), "ddi:4": ("train", "nevus", False)}
# sample id -> (kind, disease, source ids, base photo or healthy prompt photo, donor photo, strict, paper)
ROWS = {
    "lm-a": ("lesion_mapped", "melanoma", ["ddi:1", "ddi:2"], "ddi:2", "ddi:1", "test", "train"),
    "lm-b": ("lesion_mapped", "nevus", ["ddi:1", "ddi:3"], "ddi:1", "ddi:3", "test", "test"),
    "lm-c": ("lesion_mapped", "nevus", ["ddi:1", "ddi:4"], "ddi:1", "ddi:4", "train", "train"),
    "sem-a": ("semantic", "melanoma", ["ddi:1", "ddi:2"], "ddi:2", None, "test", "test"),
    "sem-b": ("semantic", "nevus", ["ddi:2", "ddi:4"], "ddi:2", None, "test", "train"),
    "sem-c": ("semantic", "melanoma", ["ddi:1", "ddi:2", "ddi:4"], "ddi:4", None, "test", "train"),  # released
    "sem-d": ("semantic", "nevus", ["ddi:4"], "ddi:4", None, "train", "train"),
}


def _png(seed: int) -> bytes:
    return encode_png(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def _records(store: StageStore, real: StageStore) -> tuple[list[Record], list[Record]]:
    reals, synth = [], []
    for i, (src, (split, disease, mal)) in enumerate(PHOTOS.items()):
        sid = f"real-{i}"
        reals.append(Record(sample_id=sid, kind="real", skin_tone="light", malignant=mal, disease=disease,
                            source_ids=[src], image_path=real.put_image(sid, _png(i)), split=split))
        hid = f"healthy-{src[4:]}"
        synth.append(Record(sample_id=hid, kind="healthy", skin_tone="light", malignant=False, disease="healthy",
                            source_ids=[src], image_path=store.put_image(hid, _png(10 + i)), parent_id=sid,
                            generator=Generator("opencv")))
    for k, (sid, (kind, disease, sources, first, donor, _, _)) in enumerate(ROWS.items()):
        extra = ({"base_id": f"healthy-{first[4:]}", "donor_id": f"real-{list(PHOTOS).index(donor)}",
                  "params": {"donor_source_ids": [donor]}} if kind == "lesion_mapped" else
                 {"parent_id": f"healthy-{first[4:]}",
                  "params": {"healthy_prompt_photos": {first: PHOTOS[first][1]}}})
        synth.append(Record(sample_id=sid, kind=kind, skin_tone="medium", malignant=PHOTOS[sources[0]][2],
                            disease=disease, source_ids=sources, image_path=store.put_image(sid, _png(100 + k)),
                            generator=Generator(kind), **extra))
    return reals, synth


def build(tmp_path, rule: str):
    """The hand-made rows placed by `rule` (curation's `apply_splits`) and published as version `v-<rule>`."""
    from builder.build.publish import publish
    from builder.core.config import load_config
    from curation.leakage import apply_splits, rows_by_rule

    store, real = StageStore(tmp_path / f"store-{rule}"), StageStore(tmp_path / f"store-{rule}" / "real")
    reals, synth = _records(store, real)
    split_of = {src: v[0] for src, v in PHOTOS.items()}
    placed, _, rejected = apply_splits(synth, split_of, reference=reals, rule=rule)
    assert not rejected
    cfg = load_config("1.1")
    cfg = dataclasses.replace(cfg, version=f"v-{rule}",
                              curation=dataclasses.replace(cfg.curation, leakage_rule=rule))
    stores = {"healthy": store, "lesion_mapped": store, "semantic": store, "real": real}
    folder = tmp_path / "out" / cfg.version
    counts = {"rows_by_rule": rows_by_rule(placed, reals, split_of)}
    publish(folder, cfg, placed, stores, [{"stage": "curate", "done": len(placed), "counts": counts}])  # audit: clean
    return folder, {r.sample_id: r.split for r in placed}


def _export(folder, out, *extra) -> tuple[dict[str, set[str]], dict]:
    assert main(["-q", "export", "fairdisco", "--version", folder.name, "--folder", str(folder),
                 "--out", str(out), *extra]) == 0
    sides = {}
    for side in ("train", "test"):
        with open(out / f"{side}.csv", newline="") as f:
            sides[side] = {row["sample_id"] for row in csv.DictReader(f)}
    return sides, json.loads((out / "export_report.json").read_text())


def _want(rule: str) -> dict[str, set[str]]:
    col = 5 if rule == "strict" else 6
    return {side: {sid for sid, v in ROWS.items() if (v[col] == "test") == (side == "test")}
            for side in ("train", "test")}


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    root = tmp_path_factory.mktemp("rules")
    return {rule: build(root, rule) for rule in ("strict", "paper")}


@pytest.mark.parametrize("built", ["strict", "paper"])
def test_the_build_places_rows_by_its_rule(versions, built):
    _, splits = versions[built]
    col = 5 if built == "strict" else 6
    assert {sid: splits[sid] for sid in ROWS} == {sid: v[col] for sid, v in ROWS.items()}


@pytest.mark.parametrize("built", ["strict", "paper"])
@pytest.mark.parametrize("rule", [None, "strict", "paper"])
def test_export_places_rows_by_the_chosen_rule(versions, tmp_path, built, rule):
    folder, _ = versions[built]
    sides, report = _export(folder, tmp_path / "x", *(["--rule", rule] if rule else []))
    applied = rule or built
    assert sides == _want(applied)
    assert report["rule"] == applied and report["version_rule"] == built
    assert report["holdout"]["placed_by"] == ("build split" if applied == built else "lineage")
    if applied != built:  # placed again: both rules counted over the lesion rows
        by_rule = report["holdout"]["rows_by_rule"]
        assert by_rule["strict"] == {"test": 5, "train": 2} and by_rule["paper"] == {"test": 2, "train": 5}


def test_the_audit_checks_the_versions_rule_unless_told(versions, tmp_path):
    folder, _ = versions["paper"]
    report = tmp_path / "r.json"
    assert main(["audit", str(folder), "--report", str(report)]) == 0
    assert json.loads(report.read_text())["rule"] == "paper"
    assert main(["audit", str(folder), "--report", str(report), "--rule", "strict"]) == 1
    doc = json.loads(report.read_text())
    assert doc["rule"] == "strict"
    assert {i["sample_id"] for i in doc["leakage"]["items"]} == {
        sid for sid, v in ROWS.items() if v[5] == "test" and v[6] == "train"}


@pytest.mark.parametrize("built", ["strict", "paper"])
def test_the_card_states_the_rule_and_rows_under_each(versions, built):
    folder, _ = versions[built]
    card = " ".join((folder / "README.md").read_text().split())
    other = "paper" if built == "strict" else "strict"
    assert ("Rule applied: **the paper's**" if built == "paper" else "Rule applied: **strict**") in card
    healthy = {"train": 2, "validation": 0, "test": 2}  # each photo's own healthy row, under both rules
    mine = {s: healthy[s] + sum(v[5 if built == "strict" else 6] == s for v in ROWS.values()) for s in healthy}
    theirs = {s: healthy[s] + sum(v[5 if other == "strict" else 6] == s for v in ROWS.values()) for s in healthy}
    cells = "; ".join(f"{s} {mine[s]:,} ({other} rule: {theirs[s]:,})" for s in ("train", "validation", "test"))
    assert f"Synthetic rows per split under it: {cells}." in card
