"""Card truths per source: the split sentence and parameters name the source actually built from,
and the card counts the distinct source photos behind each tone and split, warning when few."""
from __future__ import annotations

import pytest

from builder.core.config import load_config
from builder.core.schema import Record
from cards import photos
from cards.card import card_facts
from cards.text import how_built, split_protocol
from tests.publish_helpers import make_store

FITZ_INFO = {"name": "fitz17k", "layout": "fitz17k", "table": "metadata.csv", "files": 12, "fingerprint": "x"}


@pytest.fixture(scope="module")
def fitz_records(shared_data, tmp_path_factory):
    return make_store(shared_data, tmp_path_factory.mktemp("truths"), limit=12).records()


def test_split_sentence_and_parameters_name_the_real_source(fitz_records):
    cfg = load_config("1.1")
    sentence = split_protocol(cfg, FITZ_INFO)
    assert "`metadata.csv`" in sentence and "ddi_metadata.csv" not in sentence
    assert "PatchAlign24's DDI holdout," not in sentence and "not a split of theirs" in sentence
    assert split_protocol(cfg) == split_protocol(cfg, {"name": "demo", "layout": "ddi", "table": "ddi_metadata.csv"})
    text = how_built(card_facts(cfg, fitz_records, source_info=FITZ_INFO))
    params = text.split("```json", 1)[1] if "```json" in text else text
    assert '"name": "fitz17k"' in params and '"name": "demo"' not in params


def _rec(i: int, split: str, tone: str, kind: str = "lesion_mapped", sources=None) -> Record:
    return Record(sample_id=f"{kind}-{i:016x}", kind=kind, skin_tone=tone, malignant=bool(i % 2),
                  disease="melanoma", source_ids=sources or [f"ddi:{i:06d}"], split=split)


def test_distinct_photos_per_tone_and_split_with_plain_warnings():
    recs = [_rec(i, "train", tone) for i, tone in enumerate(["light", "medium", "dark"] * 12)]
    recs += [_rec(100 + i, "test", "dark", sources=["ddi:000900"]) for i in range(5)]  # one heel photo
    recs += [_rec(200 + i, "test", t) for i, t in enumerate(["light"] * 10 + ["medium"] * 10)]
    counts = photos.photo_counts(recs)
    assert len(counts[("train", "dark")]) == 12 and len(counts[("test", "dark")]) == 1
    found = photos.warnings(recs)
    assert any("dark rows of test rest on 1 distinct source photo (fewer than 10)" in w for w in found)
    assert not any("train" in w for w in found)  # 12 photos per tone in train: no warning
    recs_no_dark_val = recs + [_rec(300 + i, "validation", "light") for i in range(12)]
    assert any("validation has no dark row" in w for w in photos.warnings(recs_no_dark_val))
    assert photos.imbalance(recs)["lesion_mapped"] == pytest.approx(22 / 17)  # light 12+10, medium 12+10, dark 12+5


def test_card_section_and_label_mapping(fitz_records):
    cfg = load_config("1.1")
    section = photos.section(card_facts(cfg, fitz_records, source_info=FITZ_INFO))
    assert section.startswith("## Source photos") and "| split | light | medium | dark |" in section
    assert "**Warnings:**" in section  # 12 photos cannot give 10 per tone and split
    assert "`non-neoplastic` are both published as not malignant" in section
