"""Splits on the real DDI metadata: stratified, seeded, lineage-grouped; test-id files; PatchAlign24's holdout."""
from __future__ import annotations

import dataclasses
import random
from collections import Counter

import numpy as np
import polars as pl
import pytest

from builder.core.config import CurationConfig
from builder.core.errors import ConfigError
from builder.core.schema import DDI_TONE_TO_NAME, Record
from curation.splits import assign_splits, lineage_roots, split_table

CFG = CurationConfig()


@pytest.fixture(scope="module")
def ddi(shared_data):
    """One real Record per row of the published DDI table (no images needed to split)."""
    df = pl.read_csv(shared_data / "ddi_metadata.csv")
    return [Record(sample_id=f"real-{f[:6]}", kind="real", skin_tone=DDI_TONE_TO_NAME[t], malignant=m,
                   disease=d, source_ids=[f"ddi:{f[:6]}"])
            for f, t, m, d in zip(df["DDI_file"], df["skin_tone"], df["malignant"], df["disease"])]


def test_stratified_ratios_per_tone_and_malignancy(ddi):
    split_of = assign_splits(ddi, CFG)
    assert len(split_of) == 653 and set(split_of.values()) == {"train", "validation", "test"}
    strata = Counter((r.skin_tone, r.malignant) for r in ddi)
    table = split_table(ddi, split_of)
    for (tone, mal), n in strata.items():
        key = f"{tone}/{'malignant' if mal else 'benign'}"
        for split, ratio in CFG.ratios.items():
            assert abs(table[split].get(key, 0) - n * ratio) < 1, (key, split)


def test_seeded_deterministic_and_order_free(ddi):
    a = assign_splits(ddi, CFG)
    shuffled = ddi[:]
    random.Random(3).shuffle(shuffled)
    assert assign_splits(shuffled, CFG) == a
    other = assign_splits(ddi, dataclasses.replace(CFG, split_seed=1))
    assert other != a and Counter(other.values()) == Counter(a.values())


def test_lineage_groups_land_together(ddi):
    # Plant lineage: 40 triples share a patient, 20 pairs are near-duplicates, 10 records share sources.
    recs = list(ddi)
    for k in range(40):
        for j in range(3):
            i = 3 * k + j
            recs[i] = dataclasses.replace(recs[i], patient_id=f"p{k}")
    links = [(ddi[200 + 2 * k].source_ids[0], ddi[201 + 2 * k].source_ids[0]) for k in range(20)]
    for k in range(10):  # a record deriving from two sources ties them together
        i = 300 + k
        recs[i] = dataclasses.replace(recs[i], source_ids=[ddi[i].source_ids[0], ddi[400 + k].source_ids[0]])
    split_of = assign_splits(recs, CFG, links=links)
    for k in range(40):
        assert len({split_of[ddi[3 * k + j].source_ids[0]] for j in range(3)}) == 1
    for a, b in links:
        assert split_of[a] == split_of[b]
    for k in range(10):
        assert split_of[ddi[300 + k].source_ids[0]] == split_of[ddi[400 + k].source_ids[0]]
    assert Counter(split_of.values())["test"] == pytest.approx(0.2 * 653, abs=3)
    roots = lineage_roots(recs, links)
    assert roots[ddi[2].source_ids[0]] == ddi[0].source_ids[0]  # the smallest id is the root


def test_test_ids_file(ddi, tmp_path):
    f = tmp_path / "test.txt"
    f.write_text("# held out by the clinic\nddi:000001\nddi:000002  # comment\n")
    recs = [dataclasses.replace(ddi[2], patient_id="x"),
            dataclasses.replace(ddi[0], patient_id="x")] + ddi[1:2] + ddi[3:]
    cfg = dataclasses.replace(CFG, split_method="test_ids", test_ids_file=str(f))
    split_of = assign_splits(recs, cfg)
    test = sorted(s for s, v in split_of.items() if v == "test")
    assert test == ["ddi:000001", "ddi:000002", ddi[2].source_ids[0]]  # its patient came along
    rest = Counter(v for v in split_of.values() if v != "test")
    assert rest["validation"] == pytest.approx(650 / 8, abs=3)
    f.write_text("ddi:000001\nddi:999999\n")
    with pytest.raises(ConfigError, match=r"1 of the 2 test ids \(ddi:999999\) are not among the 653 source ids "
                                          r"of the ingested real images \(ddi:000001, ddi:000002, ddi:000003, \.\.\.\)"):
        assign_splits(ddi, cfg)


def test_patchalign24_holdout_reproduced(ddi, tmp_path):
    from sklearn.model_selection import train_test_split

    cfg = dataclasses.replace(CFG, split_method="patchalign24")
    split_of = assign_splits(ddi, cfg)
    idx = np.arange(len(ddi))  # their CSV in DDI order: the split depends only on the row count
    _, test_idx = train_test_split(idx, test_size=0.2, random_state=12140420)
    want = sorted(ddi[i].source_ids[0] for i in test_idx)
    assert sorted(s for s, v in split_of.items() if v == "test") == want and len(want) == 131
    # Another row order (their CSV's `hasher` column) gives the matching other holdout.
    order = [r.source_ids[0][4:] + ".png" for r in ddi][::-1]
    csv = tmp_path / "patchalign.csv"
    pl.DataFrame({"hasher": order, "high": [0] * len(order)}).write_csv(csv)
    split2 = assign_splits(ddi, dataclasses.replace(cfg, patchalign24_csv=str(csv)))
    want2 = sorted(f"ddi:{order[i][:6]}" for i in test_idx)
    assert sorted(s for s, v in split2.items() if v == "test") == want2 != want


def test_bad_method_and_ratios(ddi):
    with pytest.raises(ConfigError, match="split_method='random'"):
        assign_splits(ddi, dataclasses.replace(CFG, split_method="random"))
    with pytest.raises(ConfigError, match="summing to 1"):
        assign_splits(ddi, dataclasses.replace(CFG, ratios={"train": 0.9, "validation": 0.1, "test": 0.2}))
