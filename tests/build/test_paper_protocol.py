"""Version 1.1's lesion mapping is the paper's, on real Fitzpatrick17k photos: every base x donor pair once,
pad 10, unrotated, a candidate that fits nowhere discarded (never kept in place), and the card counts them."""
from __future__ import annotations

import polars as pl
import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.store import StageStore


@pytest.mark.slow
def test_v1_1_on_real_photos_maps_every_pair_once_and_discards_what_does_not_fit(tmp_path, shared_data):
    cfg = load_config("1.1")
    result = build(cfg, BuildOptions(out=tmp_path / "out", source=shared_data / "fitz17k_lesions", limit=10,
                                     workers=2, stand_in=True))
    work = tmp_path / "out" / ".work" / "1.1"
    healthy = StageStore(work / "healthy").records()
    real = [r for r in StageStore(work / "real").records() if (work / "real" / "masks" / f"{r.sample_id}.png").exists()]
    plan = pl.read_parquet(work / "lesion_mapped" / "plan.parquet")
    pairs = set(zip(plan["base_id"], plan["donor_id"]))
    assert plan.height == len(pairs) == len(healthy) * len(real)  # every pair, each once

    mapped = StageStore(work / "lesion_mapped")
    made, rejected = mapped.records(), mapped.rejections()
    assert len(made) + len(rejected) == plan.height
    assert {r.reason for r in rejected} <= {"no_placement_fits"}
    assert {r.placement for r in made} == {"fit"}  # nothing kept in place, nothing shrunk
    assert {r.params["pad"] for r in made} == {10} and {r.params["angle"] for r in made} == {0.0}

    card = (result.out_dir / "README.md").read_text()
    assert "Lesion mapping, as the paper counts it" in card
    assert f"({plan.height:,})" in card and f"{len(rejected):,} discarded" in card
    assert "imbalance ratio (max / min over tones)" in card


def test_v1_1_semantic_settings_are_the_papers_and_generate_nothing_by_default():
    s = load_config("1.1").semantic
    assert (s.sampling, s.strength, s.guidance, s.sample_steps) == ("img2img", 0.725, 8.75, 100)
    assert (s.ti_steps, s.ti_lr, s.ti_batch, s.ti_resolution, s.init_word) == (500, 5e-4, 4, 512, "skin")
    assert (s.lora_steps, s.lora_lr, s.lora_batch, s.lora_rank, s.lora_resolution) == (750, 5e-6, 16, 8, 256)
    assert s.model_id == "stabilityai/stable-diffusion-2-1-base" and s.budget == 0
    assert load_config("1.1").curation.leakage_rule == "strict"  # the toolkit's default; `paper` is the paper's
