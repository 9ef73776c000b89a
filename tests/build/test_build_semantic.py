"""`build` with semantic synthetics switched on (tiny model from configs): trained on train images only,
sampled image-to-image from the build's healthy synthetics as v1.1 says (the paper)."""
import csv
import json

import datasets
import pytest
import yaml

from builder.build import BuildOptions, build
from builder.core.config import CONFIG_DIR, load_config
from generation.semantic.training_set import manifest_source_ids
from generation.tiny import save_tiny


@pytest.mark.slow  # a full build of another config
def test_build_with_semantic_stage_keeps_test_images_out_of_training(tmp_path):
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw["version"] = "1.1-semantic-test"
    raw["source"]["demo_count"] = 18
    raw["lesion_map"]["budget"] = 12
    raw["semantic"].update({
        "budget": 4, "model_id": str(save_tiny("text2img", tmp_path / "tiny")), "revision": None,
        "diseases": ["nevus"], "mixed_precision": "no", "ti_steps": 1, "ti_batch": 1, "ti_grad_accum": 1,
        "ti_resolution": 32, "lora_steps": 1, "lora_batch": 1, "lora_grad_accum": 1, "lora_resolution": 32,
        "class_images": 2, "checkpoint_every": 1, "sample_steps": 2, "sample_resolution": 32,
        "sample_batch": 2, "shard_size": 2})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = build(load_config(str(path)), BuildOptions(out=tmp_path / "out", workers=1))

    semantic = [r for r in result.records if r.kind == "semantic"]
    assert len(semantic) == 4 and {r.disease for r in semantic} == {"nevus"}
    work = result.out_dir.parent / ".work" / "1.1-semantic-test"
    with open(work / "splits.csv") as f:
        split_of = {row["source_id"]: row["split"] for row in csv.DictReader(f)}
    healthy = {r.sample_id: r for r in result.records if r.kind == "healthy"}
    manifests = [json.loads((work / "models" / "nevus" / kind / "manifest.json").read_text()) for kind in ("ti", "lora")]
    trained_on = {s for m in manifests for s in manifest_source_ids(m)}  # instance photos, class images' photos
    assert trained_on and all(split_of[s] != "test" for s in trained_on)  # the models saw train photos only
    for r in semantic:  # v1.1 samples image-to-image from the build's healthy synthetics (the paper)
        start = healthy[r.parent_id]
        assert r.params["sampling"] == "img2img" and r.params["strength"] == 0.725 and r.params["guidance"] == 8.75
        assert set(start.source_ids) | trained_on >= set(r.source_ids) >= set(start.source_ids)
        assert r.split == max((split_of[s] for s in r.source_ids), key=("train", "validation", "test").index)
        assert r.generator.backend == "diffusers" and r.generator.adapters and r.prompt and r.seed is not None
    ds = datasets.load_dataset(str(result.out_dir), name="semantic")
    assert sum(d.num_rows for d in ds.values()) == 4
