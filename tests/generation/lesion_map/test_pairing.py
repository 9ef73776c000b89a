"""The paper's lesion-map plan: every base x every donor once (pairing all), across splits, or a sample."""
from __future__ import annotations

import dataclasses

import pytest

from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.schema import Record
from generation.lesion_map.plan import make_plan
from generation.lesion_map.stage import check


def _rec(kind: str, i: int, tone: str, disease: str = "melanoma") -> Record:
    return Record(sample_id=f"{kind}-{i:03d}", kind=kind, split="train", skin_tone=tone, fitzpatrick=None,
                  malignant=disease == "melanoma", disease=disease, disease_raw=disease,
                  source_ids=(f"demo:{i:06d}",))


def _stores():
    bases = [_rec("healthy", i, ("light", "medium", "dark")[i % 3]) for i in range(5)]
    donors = [_rec("real", i, ("dark", "light")[i % 2], ("melanoma", "nevus")[i % 2]) for i in range(4)]
    return bases, donors


def test_all_pairs_is_every_base_times_every_donor_once():
    bases, donors = _stores()
    plan = make_plan(bases, donors, None, seed=1, pairing="all")
    pairs = list(zip(plan["base_id"], plan["donor_id"]))
    assert len(pairs) == len(set(pairs)) == len(bases) * len(donors)
    assert plan["row"].to_list() == list(range(plan.height))


def test_a_budget_samples_pairs_without_replacement_and_is_seeded():
    bases, donors = _stores()
    a = make_plan(bases, donors, 7, seed=3, pairing="all")
    b = make_plan(bases, donors, 7, seed=3, pairing="all")
    pairs = list(zip(a["base_id"], a["donor_id"]))
    assert a.equals(b) and len(set(pairs)) == 7
    assert make_plan(bases, donors, 99, seed=3, pairing="all").height == 20  # never more than every pair


def test_pairs_cross_splits_and_take_the_most_held_out_one():
    bases, donors = _stores()
    split_of = {"demo:000001": "test", "demo:000002": "validation"}
    plan = make_plan(bases, donors, None, seed=1, split_of=split_of, pairing="all")
    for row in plan.iter_rows(named=True):
        ids = set(row["base_source_ids"].split(";")) | set(row["donor_source_ids"].split(";"))
        want = "test" if "demo:000001" in ids else "validation" if "demo:000002" in ids else "train"
        assert row["split"] == want
    assert plan.height == 20  # nothing dropped for crossing splits: the leakage rule places each row


def test_v1_1_is_the_papers_lesion_mapping_and_the_notebook_keeps_its_own_config():
    lm = load_config("1.1").lesion_map
    assert (lm.pairing, lm.budget, tuple(lm.pads), lm.rotate, tuple(lm.fallbacks), lm.blend) == \
        ("all", None, (10,), False, (), "alpha")
    nb = load_config("1.1-notebook").lesion_map
    assert (nb.pairing, nb.budget, tuple(nb.pads), nb.rotate, tuple(nb.fallbacks)) == \
        ("balanced", 120, (10, 5, 0), True, ("keep_in_place",))


@pytest.mark.parametrize("change,needle", [({"pairing": "some"}, "lesion_map.pairing"),
                                           ({"pairing": "balanced", "budget": None}, "pairing: all"),
                                           ({"working_size": 10}, "lesion_map.working_size")])
def test_bad_pairing_settings_are_refused(change, needle):
    with pytest.raises(ConfigError, match=needle):
        check(dataclasses.replace(load_config("1.1").lesion_map, **change))
