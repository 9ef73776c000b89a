"""The card's 'Sources and directions' section: rows per direction read from the lineage columns alone, the
paper's S7 figures beside them, and nothing for a one-source build."""
from __future__ import annotations

import types

from builder.core.config import load_config
from builder.core.schema import Record
from cards.directions import direction_counts, section


def _rec(sid: str, kind: str, split: str, sources: tuple[str, ...], **kw) -> Record:
    return Record(sample_id=sid, kind=kind, split=split, skin_tone="light", fitzpatrick=None, malignant=False,
                  disease="psoriasis", disease_raw="psoriasis", source_ids=sources, **kw)


HEALTHY = [_rec("h-ddi", "healthy", "train", ("ddi:000001",)), _rec("h-fitz", "healthy", "test", ("fitz17k:aa",))]
MAPPED = [_rec("lm-1", "lesion_mapped", "test", ("ddi:000002", "fitz17k:aa"), donor_source_ids=("ddi:000002",),
               base_source_ids=("fitz17k:aa",)),
          _rec("lm-2", "lesion_mapped", "train", ("ddi:000001", "fitz17k:bb"), donor_source_ids=("fitz17k:bb",),
               base_source_ids=("ddi:000001",))]
SEMANTIC = [_rec("s-1", "semantic", "train", ("ddi:000001", "fitz17k:bb", "fitz17k:cc"), parent_id="h-ddi"),
            _rec("s-2", "semantic", "test", ("ddi:000002", "fitz17k:aa"), parent_id="h-fitz")]


def _facts(records, info=None):
    return types.SimpleNamespace(records=records, source_info=info, cfg=load_config("1.2"))


def test_rows_are_counted_per_direction_and_split():
    got = {k: dict(v) for k, v in direction_counts(HEALTHY + MAPPED + SEMANTIC).items()}
    assert got == {("healthy", "ddi", "ddi"): {"train": 1}, ("healthy", "fitz17k", "fitz17k"): {"test": 1},
                   ("lesion_mapped", "ddi", "fitz17k"): {"test": 1},
                   ("lesion_mapped", "fitz17k", "ddi"): {"train": 1},
                   ("semantic", "fitz17k", "ddi"): {"train": 1}, ("semantic", "ddi", "fitz17k"): {"test": 1}}


def test_the_section_sets_the_papers_figures_beside_each_direction():
    info = {"sources": [{"name": "ddi", "layout": "ddi", "subset": "all", "in": 656},
                        {"name": "fitz17k", "layout": "fitz17k", "subset": "expert_verified", "in": 16577}]}
    text = section(_facts(HEALTHY + MAPPED + SEMANTIC, info))
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| ")}
    assert rows["`ddi` lesions onto `fitz17k` healthy bases"].endswith("| 0 | 0 | 1 | 1 | 13,822 |")
    assert rows["`fitz17k` lesions onto `ddi` healthy bases"].endswith("| 1 | 0 | 0 | 1 | 9,394 |")
    assert rows["`fitz17k` diseases with `ddi` healthy prompts"].endswith("| 37,080 |")
    assert rows["`ddi` diseases with `fitz17k` healthy prompts"].endswith("| 8,970 |")
    assert "| `fitz17k` | fitz17k | expert_verified | 16577 |" in text


def test_a_one_source_build_has_no_such_section():
    one = [r for r in HEALTHY if r.source_ids[0].startswith("ddi")]
    assert section(_facts(one, {"name": "ddi", "layout": "ddi"})) == ""
