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
