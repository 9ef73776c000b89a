"""The paper's leakage rule beside the strict one: counted for the card, hand-checked on small lineages."""
from __future__ import annotations

import pytest

from builder.core.schema import Record
from curation.leakage import paper_rule_split, rows_by_rule


def _rec(sid, kind, split, sources, disease="melanoma", **kw) -> Record:
    return Record(sample_id=sid, kind=kind, split=split, skin_tone="light", fitzpatrick=None, malignant=True,
                  disease=disease, disease_raw=disease, source_ids=tuple(sources), **kw)


SPLIT_OF = {"ddi:1": "train", "ddi:2": "test", "ddi:3": "test"}
REAL = [_rec("real-1", "real", "train", ["ddi:1"]), _rec("real-2", "real", "test", ["ddi:2"]),
        _rec("real-3", "real", "test", ["ddi:3"], disease="nevus")]
HEALTHY_TEST = _rec("healthy-2", "healthy", "test", ["ddi:2"])
HEALTHY_NEVUS = _rec("healthy-3", "healthy", "test", ["ddi:3"], disease="healthy")


def test_a_lesion_map_on_a_test_base_with_a_train_donor_is_train_only_under_the_papers_rule():
    lm = _rec("lm", "lesion_mapped", "test", ["ddi:2", "ddi:1"], base_id="healthy-2", donor_id="real-1")
    by_id = {r.sample_id: r for r in (*REAL, HEALTHY_TEST, lm)}
    assert paper_rule_split(lm, by_id, SPLIT_OF) == "train"
    donor_test = _rec("lm2", "lesion_mapped", "test", ["ddi:1", "ddi:2"], base_id="healthy-1", donor_id="real-2")
    assert paper_rule_split(donor_test, {**by_id, "lm2": donor_test}, SPLIT_OF) == "test"


def test_a_semantic_image_is_held_out_when_its_healthy_prompt_reconstructs_a_test_photo_of_its_disease():
    by_id = {r.sample_id: r for r in (*REAL, HEALTHY_TEST, HEALTHY_NEVUS)}
    by_id.update({s: r for r in REAL for s in r.source_ids})
    same = _rec("sem-1", "semantic", "test", ["ddi:1", "ddi:2"], parent_id="healthy-2")
    other = _rec("sem-2", "semantic", "test", ["ddi:1", "ddi:3"], parent_id="healthy-3")  # melanoma on a nevus photo
    assert paper_rule_split(same, by_id, SPLIT_OF) == "test"
    assert paper_rule_split(other, by_id, SPLIT_OF) == "train"


def test_rows_by_rule_counts_synthetics_per_split_under_both_rules():
    lm = _rec("lm", "lesion_mapped", "test", ["ddi:2", "ddi:1"], base_id="healthy-2", donor_id="real-1")
    counts = rows_by_rule([HEALTHY_TEST, lm, REAL[0]], REAL, SPLIT_OF)
    assert counts.pop("by_kind") == {
        "healthy": {"strict": {"train": 0, "validation": 0, "test": 1}, "paper": {"train": 0, "validation": 0, "test": 1}},
        "lesion_mapped": {"strict": {"train": 0, "validation": 0, "test": 1},
                          "paper": {"train": 1, "validation": 0, "test": 0}}}
    assert counts == {"strict": {"train": 0, "validation": 0, "test": 2},
                      "paper": {"train": 1, "validation": 0, "test": 1}}


# Hand-computed placements: photos ddi:1 (train, melanoma), ddi:2 (test, melanoma), ddi:3 (test, nevus),
# ddi:4 (validation, melanoma); each has its healthy synthetic; a model trained on ddi:1 and ddi:4.
SPLITS4 = {**SPLIT_OF, "ddi:4": "validation"}
REAL4 = [*REAL, _rec("real-4", "real", None, ["ddi:4"])]
HEALTHY = [_rec(f"healthy-{i}", "healthy", None, [f"ddi:{i}"], disease="healthy", parent_id=f"real-{i}")
           for i in (1, 2, 3, 4)]
PLACED = {  # sample id -> (record, strict split, the paper's split)
    "lm-testbase-traindonor": (_rec("lm-testbase-traindonor", "lesion_mapped", None, ["ddi:1", "ddi:2"],
                                    base_id="healthy-2", donor_id="real-1"), "test", "train"),
    "lm-trainbase-testdonor": (_rec("lm-trainbase-testdonor", "lesion_mapped", None, ["ddi:1", "ddi:3"],
                                    disease="nevus", base_id="healthy-1", donor_id="real-3"), "test", "test"),
    "lm-valbase-traindonor": (_rec("lm-valbase-traindonor", "lesion_mapped", None, ["ddi:1", "ddi:4"],
                                   base_id="healthy-4", donor_id="real-1"), "validation", "train"),
    "lm-traindonor-valdonor": (_rec("lm-traindonor-valdonor", "lesion_mapped", None, ["ddi:1", "ddi:4"],
                                    base_id="healthy-1", donor_id="real-4"), "validation", "validation"),
    # a melanoma sampled from the healthy prompt of a melanoma test photo: the pair reconstructs it
    "sem-same": (_rec("sem-same", "semantic", None, ["ddi:1", "ddi:2", "ddi:4"], parent_id="healthy-2"),
                 "test", "test"),
    # a nevus sampled from the same prompt: the pair (nevus, healthy of a melanoma) reconstructs nothing
    "sem-other": (_rec("sem-other", "semantic", None, ["ddi:1", "ddi:2", "ddi:4"], disease="nevus",
                       parent_id="healthy-2"), "test", "train"),
    "sem-train-prompt": (_rec("sem-train-prompt", "semantic", None, ["ddi:1", "ddi:4"], parent_id="healthy-1"),
                         "validation", "train"),
    # a released model saw every photo of its disease, the test one too: only strict holds it out
    "sem-released": (_rec("sem-released", "semantic", None, ["ddi:1", "ddi:2", "ddi:4"], parent_id="healthy-1"),
                     "test", "train"),
    "healthy-3": (HEALTHY[2], "test", "test"),
}


@pytest.mark.parametrize("rule", ["strict", "paper"])
def test_apply_splits_places_every_row_by_the_chosen_rule(rule):
    from curation.leakage import apply_splits

    records = [r for r, _, _ in PLACED.values()]
    kept, report, rejected = apply_splits(records, SPLITS4, reference=[*REAL4, *HEALTHY], rule=rule)
    assert not rejected
    col = 1 if rule == "strict" else 2
    assert {r.sample_id: r.split for r in kept} == {sid: v[col] for sid, v in PLACED.items()}
    moved = {row["sample_id"]: row["reason"] for row in report}
    if rule == "strict":
        assert moved["lm-testbase-traindonor"] == "source_in_test"
    else:
        assert moved["lm-testbase-traindonor"] == "donor_in_train"
        assert moved["sem-same"] == "healthy_prompt_of_its_disease_in_test"


def test_rows_by_rule_follows_lineage_whatever_split_the_rows_hold():
    records = [r for r, _, _ in PLACED.values()]
    counts = rows_by_rule(records, [*REAL4, *HEALTHY], SPLITS4)
    for col, rule in ((1, "strict"), (2, "paper")):
        want = {s: sum(v[col] == s for v in PLACED.values()) for s in ("train", "validation", "test")}
        assert counts[rule] == want, rule


def test_paper_sources_of_a_semantic_row_from_its_recorded_prompt_photos():
    from curation.leakage import paper_sources

    photos = {"ddi:2": "melanoma", "ddi:9": None}  # a disease not known counts as the row's own
    assert paper_sources("semantic", "melanoma", ["ddi:1"], prompt_photos=photos) == ["ddi:2", "ddi:9"]
    assert paper_sources("semantic", "nevus", ["ddi:1"], prompt_photos=photos) == ["ddi:9"]
    assert paper_sources("semantic", "nevus", ["ddi:1", "ddi:2"]) == []  # text-to-image: no prompt
    assert paper_sources("lesion_mapped", "nevus", ["ddi:1", "ddi:2"], donor_sources=["ddi:2"]) == ["ddi:2"]
    assert paper_sources("healthy", "healthy", ["ddi:3"]) == ["ddi:3"]


def test_an_unknown_rule_is_refused_naming_the_setting():
    from builder.core.config import CurationConfig
    from builder.core.errors import ConfigError
    from curation.curate import check_config

    with pytest.raises(ConfigError, match="curation.leakage_rule 'lax': expected one of strict, paper"):
        check_config(CurationConfig(leakage_rule="lax"))


def test_the_rule_is_part_of_the_config_hash():
    import dataclasses

    from builder.core.config import load_config

    for version in ("1.1", "1.2"):
        cfg = load_config(version)
        assert cfg.curation.leakage_rule == "strict"
        paper = dataclasses.replace(cfg, curation=dataclasses.replace(cfg.curation, leakage_rule="paper"))
        assert paper.config_hash() != cfg.config_hash()
