"""v1.1's test split is PatchAlign24's DDI holdout, decided on the real metadata table before ingest."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.schema import Record
from curation.curate import check_config
from curation.splits import assign_splits, holdout_test_ids
from tests.downstream_fixtures import reference_holdout


def _splits(path: Path) -> dict[str, str]:
    return {r["source_id"].split(":", 1)[1]: r["split"] for r in csv.DictReader(open(path))}


def test_holdout_ids_equal_sklearn_on_the_real_table(shared_data):
    ids = holdout_test_ids(shared_data / "ddi_metadata.csv", "ddi")
    want = reference_holdout(shared_data / "ddi_metadata.csv")
    assert len(ids) == len(want) == 131  # ceil(0.2 x 653)
    assert {i.split(":", 1)[1] for i in ids} == want and all(i.startswith("ddi:") for i in ids)


def test_v1_1_build_test_split_is_the_holdout_despite_rejections(ddi_build):
    src, result, root = ddi_build
    split = _splits(root / "out" / ".work" / "1.1" / "splits.csv")
    assert set(split) == src["train"] | src["test"]  # corrupt and photo-less rows were rejected
    assert {s for s, v in split.items() if v == "test"} == src["test"]  # exactly the holdout's ingested rows
    assert {s for s, v in split.items() if v == "validation"}  # carved from train
    assert not src["corrupt"] & set(split)
    # every published synthetic derived from a holdout image is in test
    for r in result.records:
        stems = {s.split(":", 1)[1] for s in r.source_ids}
        if stems & src["holdout"]:
            assert r.split == "test", r.sample_id


def test_card_states_the_protocol(ddi_build):
    _, result, _ = ddi_build
    card = (result.out_dir / "README.md").read_text()
    assert "random_state=12140420" in card and "before any image is read" in card


def test_rejected_row_moves_no_other_image():
    cfg = load_config("1.1").curation
    real = [Record(f"real-{i}", "real", ("light", "medium", "dark")[i % 3], i % 4 == 0, "d",
                   [f"ddi:{i:06d}"]) for i in range(1, 41)]
    test = {"ddi:000003", "ddi:000010", "ddi:000021", "ddi:000033", "ddi:000040", "ddi:000041"}
    full = assign_splits(real, cfg, test_ids=test, missing_ok=True)  # 000041 was never ingested
    fewer = assign_splits([r for r in real if r.source_ids[0] != "ddi:000010"], cfg, test_ids=test, missing_ok=True)
    assert {s for s, v in full.items() if v == "test"} == test - {"ddi:000041"}
    assert {s for s, v in fewer.items() if v == "test"} == test - {"ddi:000041", "ddi:000010"}
    with pytest.raises(ConfigError, match="000041"):
        assign_splits(real, cfg, test_ids=test)  # a hand-made list must name ingested images


def test_holdout_needs_its_test_size():
    cfg = load_config("1.1").curation
    bad = dataclasses.replace(cfg, ratios={"train": 0.6, "validation": 0.1, "test": 0.3})
    with pytest.raises(ConfigError, match="ratios.test to 0.2"):
        check_config(bad)
