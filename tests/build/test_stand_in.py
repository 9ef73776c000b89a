"""A version whose healthy generator needs weights names a CPU stand-in: the embedded demo source uses it and
says so (card, manifest, rows, fingerprint); a real source refuses before any work unless asked for it."""
from __future__ import annotations

import dataclasses
import json

import pytest

from builder.build import BuildOptions, build
from builder.build.pipeline import apply_stand_in
from builder.core.config import load_config
from builder.core.errors import ConfigError


def _paper_like(version: str = "1.1"):
    """v1.1 with a diffusion healthy generator that cannot load here (a Hub id, no revision), and a stand-in."""
    cfg = load_config(version)
    return dataclasses.replace(cfg, healthy=dataclasses.replace(
        cfg.healthy, backend="diffusers", model_id="org/inpainting-model", revision=None, stand_in="opencv"))


def test_the_demo_source_runs_the_stand_in_and_a_source_only_when_asked(tmp_path):
    cfg = _paper_like()
    used, stood = apply_stand_in(cfg, BuildOptions(out=tmp_path))
    assert used.healthy.backend == "opencv" and stood["healthy"]["configured"] == "diffusers"
    assert used.config_hash() != cfg.config_hash()  # one version tag never names two contents
    same, none = apply_stand_in(cfg, BuildOptions(out=tmp_path, source=tmp_path))
    assert same is cfg and none is None
    asked, stood = apply_stand_in(cfg, BuildOptions(out=tmp_path, source=tmp_path, stand_in=True))
    assert asked.healthy.backend == "opencv" and stood["healthy"]["why"] == "--cpu-stand-in"
    with pytest.raises(ConfigError, match="names no CPU stand-in"):
        apply_stand_in(load_config("1.2"), BuildOptions(out=tmp_path, source=tmp_path, stand_in=True))


def test_a_real_source_whose_generator_cannot_load_fails_first_naming_the_opt_in(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="--cpu-stand-in"):
        build(_paper_like(), BuildOptions(out=tmp_path / "out", source=shared_data / "fitz17k_lesions", limit=2))
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.slow
def test_a_stand_in_build_says_so_in_card_manifest_and_rows(tmp_path):
    cfg = _paper_like()
    cfg = dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=24),
                              source=dataclasses.replace(cfg.source, demo_count=12))
    result = build(cfg, BuildOptions(out=tmp_path / "out", workers=1))
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert manifest["stand_in"]["healthy"] == {"configured": "diffusers", "model_id": "org/inpainting-model",
                                               "used": "opencv", "why": "the embedded demo source (no model weights there)"}
    card = (result.out_dir / "README.md").read_text()
    assert "**Stand-in:** this version's healthy generator is `diffusers`" in card
    assert {r.generator.backend for r in result.records if r.kind == "healthy"} == {"opencv"}
