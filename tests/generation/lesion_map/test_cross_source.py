"""Lesion-map plans over two sources: `lesion_map.cross_source` picks the directions (donor source -> base source)."""
from __future__ import annotations

from collections import Counter

import pytest

from builder.core.directions import allowed_directions, allows, check_cross_source
from builder.core.errors import ConfigError
from builder.core.schema import Record
from generation.lesion_map.plan import make_plan
from generation.lesion_map.refill import base_groups, other_bases

TONES = ("light", "medium", "dark")


def _rec(kind: str, source: str, i: int, disease: str = "melanoma") -> Record:
    return Record(sample_id=f"{kind}-{source}-{i:03d}", kind=kind, split="train", skin_tone=TONES[i % 3],
                  fitzpatrick=None, malignant=disease == "melanoma", disease=disease, disease_raw=disease,
                  source_ids=(f"{source}:{i:06d}",))


def _two_sources():
    bases = [_rec("healthy", s, i) for s in ("ddi", "fitz17k") for i in range(4)]
    donors = [_rec("real", s, i, ("melanoma", "nevus")[i % 2]) for s in ("ddi", "fitz17k") for i in range(3)]
    return bases, donors


def _directions(plan) -> Counter:
    pairs = zip(plan["donor_source_ids"], plan["base_source_ids"])
    return Counter((d.split(":")[0], b.split(":")[0]) for d, b in pairs)


@pytest.mark.parametrize("cross, want", [
    ("any", {("ddi", "ddi"), ("ddi", "fitz17k"), ("fitz17k", "ddi"), ("fitz17k", "fitz17k")}),
    ("within", {("ddi", "ddi"), ("fitz17k", "fitz17k")}),
    ("across", {("ddi", "fitz17k"), ("fitz17k", "ddi")}),
    ("ddi->fitz17k", {("ddi", "fitz17k")})])
def test_every_pair_plan_keeps_exactly_the_allowed_directions(cross, want):
    bases, donors = _two_sources()
    plan = make_plan(bases, donors, None, seed=1, pairing="all", cross_source=cross)
    got = _directions(plan)
    assert set(got) == want
    assert all(n == 4 * 3 for n in got.values())  # every base of the one source x every donor of the other
    assert plan["row"].to_list() == list(range(plan.height))
    pairs = list(zip(plan["base_id"], plan["donor_id"]))
    assert len(pairs) == len(set(pairs))


def test_a_balanced_budget_is_shared_equally_by_the_directions_and_is_seeded():
    bases, donors = _two_sources()
    plan = make_plan(bases, donors, 21, seed=5, pairing="balanced", cross_source="across")
    assert sorted(_directions(plan).values()) == [10, 11]
    assert plan.equals(make_plan(bases, donors, 21, seed=5, pairing="balanced", cross_source="across"))
    assert plan["row"].to_list() == list(range(21))


def test_an_every_pair_budget_is_a_sample_within_the_allowed_directions():
    bases, donors = _two_sources()
    plan = make_plan(bases, donors, 10, seed=2, pairing="all", cross_source="across")
    assert plan.height == 10 and set(_directions(plan)) <= {("ddi", "fitz17k"), ("fitz17k", "ddi")}


def test_a_direction_without_both_sources_plans_nothing():
    bases, donors = _two_sources()
    plan = make_plan([b for b in bases if b.source_ids[0].startswith("ddi")], donors, None, seed=1,
                     pairing="all", cross_source="ddi->fitz17k")
    assert plan.height == 0


def test_another_base_stays_in_the_planned_bases_source():
    bases, donors = _two_sources()
    groups = base_groups(bases + [_rec("healthy", "fitz17k", 3 * k) for k in range(5, 7)], None)
    planned = next(b for b in bases if b.source_ids[0] == "fitz17k:000000")
    others = other_bases(groups, planned, donors[0], None)
    assert others and all(o.source_ids[0].startswith("fitz17k:") for o in others)


def test_cross_source_values_are_checked():
    for good in ("any", "within", "across", "ddi->fitz17k", "fitz17k->ddi-clinic2"):
        check_cross_source(good, "lesion_map.cross_source")
    for bad in ("both", "ddi>fitz17k", "DDI->F17k", "", None):
        with pytest.raises(ConfigError, match="lesion_map.cross_source=.*across"):
            check_cross_source(bad, "lesion_map.cross_source")
    assert allows("fitz17k->ddi", "fitz17k", "ddi") and not allows("fitz17k->ddi", "ddi", "fitz17k")
    assert allowed_directions("within", ["fitz17k", "ddi"]) == [("ddi", "ddi"), ("fitz17k", "fitz17k")]
