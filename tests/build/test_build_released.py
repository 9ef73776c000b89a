"""A version built from cgDDI's released per-disease models (`semantic.released`, tiny adapters in the
released formats): nothing is trained, every row's lineage is every DDI photo of its disease, the strict
rule holds out every row whose model saw a held-out photo, and the card counts the rows the paper's rule
would keep (only the (disease, healthy prompt) pairs that reconstruct a held-out photo held out)."""
from __future__ import annotations

import csv
import json

import pytest
import yaml

from builder.build import BuildOptions, build
from builder.core.config import CONFIG_DIR, load_config
from generation.tiny import save_tiny
from tests.generation.semantic.test_released import write_released_repo

DISEASE, NAME = "seborrheic keratosis", "seborrheic_keratosis"  # the demo's photos 4-6 (4 is held out)
ORDER = ("train", "validation", "test")


@pytest.mark.slow  # a full build of another config
def test_build_from_released_models_states_its_rule_and_rows_under_both(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw["version"] = "1.1-released-test"
    raw["source"]["demo_count"] = 18
    raw["lesion_map"]["budget"] = 6
    repo = write_released_repo(tmp_path / "models" / NAME, DISEASE)
    raw["semantic"].update({
        "budget": 54, "released": [str(repo)], "model_id": str(save_tiny("text2img", tmp_path / "tiny")),
        "revision": None, "mixed_precision": "no", "sample_steps": 2, "sample_resolution": 32,
        "sample_batch": 6, "shard_size": 18})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = build(load_config(str(path)), BuildOptions(out=tmp_path / "out", workers=1))

    work = result.out_dir.parent / ".work" / "1.1-released-test"
    assert not (work / "models").exists()  # nothing trained
    with open(work / "splits.csv") as f:
        split_of = {row["source_id"]: row["split"] for row in csv.DictReader(f)}
    with open(work / "demo_source" / "ddi_metadata.csv") as f:
        table = list(csv.DictReader(f))
    photos = {f"demo:{r['DDI_file'][:-4]}" for r in table if r["disease"] == "seborrheic-keratosis"}
    assert any(split_of.get(s) == "test" for s in photos)
    healthy = {r.sample_id: r for r in result.records if r.kind == "healthy"}
    semantic = [r for r in result.records if r.kind == "semantic"]
    assert semantic and {r.disease for r in semantic} == {DISEASE}
    paper = {s: 0 for s in ORDER}
    for r in semantic:
        assert set(r.source_ids) >= photos  # the model saw every photo of its disease
        assert r.params["released_model"]["photos"] == len(photos)
        assert r.split == "test"  # strict: its model saw a held-out photo
        prompt = healthy[r.parent_id].source_ids[0]
        paper["test" if prompt in photos and split_of[prompt] == "test" else
              split_of[prompt] if prompt in photos else "train"] += 1
    assert 0 < paper["test"] < len(semantic)  # the pairs reconstructing the held-out photo only
    curation = json.loads((work / "curation.json").read_text())["synthetic"]
    assert curation["leakage_rule"] == "strict"
    counts = curation["rows_by_rule"]["by_kind"]["semantic"]
    assert counts == {"strict": {"train": 0, "validation": 0, "test": len(semantic)}, "paper": paper}
    card = " ".join((result.out_dir / "README.md").read_text().split())
    cells = ", ".join(f"{s} {counts['strict'][s]:,} ({paper[s]:,})" for s in ORDER)
    assert "Rule applied: **strict**" in card and f"semantic: {cells}" in card
