"""Semantic sampling over two sources: `semantic.cross_source` keeps the (disease, healthy prompt) cells of the
allowed directions, e.g. Fitzpatrick17k diseases with DDI healthy prompts (the paper's S7.3)."""
from __future__ import annotations

import dataclasses
import types

import pytest

from builder.core.config import SemanticConfig
from builder.core.errors import ConfigError
from builder.core.schema import Record
from generation.semantic.build import prompt_filter
from generation.semantic.img2img import HealthyPrompt, check_sampling
from generation.semantic.sampling import make_plan


def _real(i: int, source: str, disease: str) -> Record:
    return Record(sample_id=f"real-{i}", kind="real", split=None, skin_tone="light", fitzpatrick=None,
                  malignant=False, disease=disease, disease_raw=disease, source_ids=(f"{source}:{i:03d}",))


REAL = [_real(1, "fitz17k", "psoriasis"), _real(2, "ddi", "nevus"), _real(3, "ddi", "melanoma"),
        _real(4, "fitz17k", "melanoma"), _real(5, "ddi", "acne")]
SPLITS = {"fitz17k:001": "train", "ddi:002": "train", "ddi:003": "train", "fitz17k:004": "train",
          "ddi:005": "test"}  # acne's only photo is a test photo: no model of it learns from either source
PROMPTS = {"h-ddi": HealthyPrompt("h-ddi", ("ddi:002",), "light", "0"),
           "h-fitz": HealthyPrompt("h-fitz", ("fitz17k:001",), "light", "0")}


def _allowed(cross: str):
    store = types.SimpleNamespace(records=lambda: REAL)
    return prompt_filter(store, SPLITS, SemanticConfig(cross_source=cross), PROMPTS)


def test_fitz17k_diseases_with_ddi_prompts_and_back():
    there = _allowed("fitz17k->ddi")
    assert {(d, h) for d in ("psoriasis", "nevus", "melanoma", "acne") for h in PROMPTS if there(d, h)} == \
        {("psoriasis", "h-ddi"), ("melanoma", "h-ddi")}  # melanoma is in both sources
    back = _allowed("ddi->fitz17k")
    assert {(d, h) for d in ("psoriasis", "nevus", "melanoma", "acne") for h in PROMPTS if back(d, h)} == \
        {("nevus", "h-fitz"), ("melanoma", "h-fitz")}
    within = _allowed("within")
    assert within("nevus", "h-ddi") and not within("nevus", "h-fitz") and within("melanoma", "h-fitz")
    assert _allowed("any") is None  # every pair, as a one-source build


def test_the_plan_keeps_only_the_allowed_cells():
    plan = make_plan(["melanoma", "nevus", "psoriasis"], per_cell=1, healthy=sorted(PROMPTS),
                     allowed=_allowed("across"))
    cells = {(p.disease, p.healthy) for p in plan}
    assert cells == {("melanoma", "h-ddi"), ("melanoma", "h-fitz"), ("nevus", "h-fitz"), ("psoriasis", "h-ddi")}
    assert len(plan) == 4 * 3  # each cell x 3 prompted tones
    with pytest.raises(ConfigError, match="semantic.cross_source leaves no"):
        make_plan(["acne"], per_cell=1, healthy=sorted(PROMPTS), allowed=_allowed("across"))


def test_cross_source_is_checked_with_the_sampling_settings():
    with pytest.raises(ConfigError, match="semantic.cross_source='both'"):
        check_sampling(dataclasses.replace(SemanticConfig(), cross_source="both"))


def test_run_semantic_plans_only_the_configured_direction(tmp_path, monkeypatch):
    """The build's path, models stubbed: `run_semantic` hands the sampler Fitzpatrick17k diseases on DDI prompts."""
    import numpy as np

    import generation.semantic.build as B
    from builder.core.store import StageStore, encode_png

    healthy = StageStore(tmp_path / "healthy")
    recs = []
    for sid, photo in (("h-ddi", "ddi:002"), ("h-fitz", "fitz17k:001")):
        path = healthy.put_image(sid, encode_png(np.full((8, 8, 3), 128, np.uint8)))
        recs.append(Record(sample_id=sid, kind="healthy", split=None, skin_tone="light", fitzpatrick=None,
                           malignant=False, disease="psoriasis", disease_raw="psoriasis", source_ids=(photo,),
                           image_path=path))
    healthy.finish_shard("healthy", recs, [])
    seen = {}
    monkeypatch.setattr(B.T, "check_config", lambda cfg, device: None)
    monkeypatch.setattr(B, "ensure_ti", lambda *a, **k: None)
    monkeypatch.setattr(B, "ensure_lora", lambda *a, **k: None)
    monkeypatch.setattr(B, "load_model", lambda work, d: d)
    monkeypatch.setattr(B, "process_slot", lambda device: (0, 1))
    monkeypatch.setattr(B, "sample", lambda out, models, plan, cfg, **k: seen.setdefault("plan", plan))
    cfg = SemanticConfig(budget=6, sampling="img2img", cross_source="fitz17k->ddi")
    B.run_semantic(types.SimpleNamespace(records=lambda: REAL), SPLITS, None, cfg, device="cpu",
                   work_dir=tmp_path / "models", healthy=healthy)
    assert {(p.disease, p.healthy) for p in seen["plan"]} == {("melanoma", "h-ddi"), ("psoriasis", "h-ddi")}
    assert len(seen["plan"]) == 6
