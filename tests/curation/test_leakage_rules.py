"""The paper's leakage rule beside the strict one: counted for the card, hand-checked on small lineages."""
from __future__ import annotations

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
    assert counts == {"strict": {"train": 0, "validation": 0, "test": 2},
                      "paper": {"train": 1, "validation": 0, "test": 1}}
