"""Healthy synthetics with the kandinsky22 backend: a tiny random-weight Kandinsky 2.2 combined inpainting
pipeline (prior + decoder) built from configs, saved to a folder and loaded through the command."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from builder.cli import main
from builder.core.config import CONFIG_DIR, HealthyConfig
from builder.core.errors import ConfigError
from builder.core.store import StageStore
from generation.healthy.kandinsky import KandinskyBackend, paper_mask
from generation.healthy.stage import run_healthy
from generation.tiny import save_tiny
from tests.generation.healthy.test_healthy import _files, assert_guarantee
from tests.healthy_fixtures import sddi_real_store

STEMS = ["000001", "000006", "000007", "000009"]
PROMPT = "A close-up clinical photograph of healthy, smooth, normal human skin"
NEGATIVE = "Bad anatomy, deformed, lesion, ugly, disfigured, illness, hole, transparent, eye"


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny("kandinsky_inpaint", tmp_path_factory.mktemp("tiny") / "kandinsky")


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    store = StageStore(tmp_path_factory.mktemp("kandinsky") / "real")
    sddi_real_store(shared_data, store, STEMS, size=(100, 130))
    return store


@pytest.fixture(scope="module")
def healed(real, tiny_model, tmp_path_factory):
    """Through the command: `generate healthy --backend kandinsky22 --model <tiny folder>`."""
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw["healthy"].update(crop_size=64, steps=2, prior_steps=2, prior_model_id=None)  # the folder holds its prior
    root = tmp_path_factory.mktemp("cli")
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    argv = ["-q", "generate", "healthy", "--source", str(real.root), "--out", str(root / "o"), "--config",
            str(root / "tiny.yaml"), "--backend", "kandinsky22", "--model", str(tiny_model),
            "--batch-size", "3", "--shard-size", "4"]
    assert main(argv) == 0
    cfg = dataclasses.replace(HealthyConfig(**{k: v for k, v in raw["healthy"].items()}), backend="kandinsky22",
                              model_id=str(tiny_model))
    return StageStore(root / "o" / "healthy"), cfg


def test_heals_real_photos_with_every_outside_pixel_unchanged(real, healed):
    out, cfg = healed
    assert len(out.records()) == len(STEMS)
    assert assert_guarantee(real, out, cfg) == len(STEMS)  # and inside the region, pixels changed


def test_rows_record_the_papers_prompts_and_settings(healed, tiny_model):
    out, _ = healed
    for rec in out.records():
        assert rec.prompt == PROMPT and rec.params["negative_prompt"] == NEGATIVE
        assert rec.generator.backend == "kandinsky22" and rec.generator.model_id == f"local:{tiny_model.name}"
        assert rec.generator.revision.startswith("local-")
        assert (rec.params["prior_steps"], rec.params["prior_guidance"]) == (2, 4.0)
        assert (rec.params["model_mask_dilate"], rec.params["model_mask_blur"]) == (5, 2.0)
        assert rec.params["steps"] == 2 and rec.seed is not None
    assert len({r.seed for r in out.records()}) == len(STEMS)


def test_seeded_and_batch_composition_is_fingerprinted(real, healed, tmp_path):
    """Same settings and batch size: the same bytes, whatever the process split."""
    out, cfg = healed
    again = StageStore(tmp_path / "again")
    for rank in range(2):
        run_healthy(real, again, cfg, batch_size=3, shard_size=4, rank=rank, world_size=2)
    assert _files(again) == _files(out)


def test_model_sees_the_papers_mask():
    mask = np.zeros((32, 32), np.uint8)
    mask[15, 15] = 255
    dilated = paper_mask(mask, 5, 0.0)
    assert (dilated > 0).sum() == 25  # a 5x5 square kernel
    soft = paper_mask(mask, 5, 2.0)
    assert 0 < soft[15, 15] < 255 and soft[15, 20] > 0 and soft[15, 26] == 0 and soft[15, 15] == soft.max()
    assert np.array_equal(paper_mask(mask, 0, 0.0), mask)


def test_hub_ids_need_pinned_revisions_for_decoder_and_prior(tmp_path):
    cfg = HealthyConfig(backend="kandinsky22", model_id="kandinsky-community/kandinsky-2-2-decoder-inpaint")
    with pytest.raises(ConfigError, match="without a pinned revision"):
        KandinskyBackend.check(cfg)
    cfg = dataclasses.replace(cfg, revision="0" * 40)
    with pytest.raises(ConfigError, match="prior_model_id"):
        KandinskyBackend.check(cfg)
    cfg = dataclasses.replace(cfg, prior_model_id="kandinsky-community/kandinsky-2-2-prior")
    with pytest.raises(ConfigError, match="healthy.prior_revision"):
        KandinskyBackend.check(cfg)
    KandinskyBackend.check(dataclasses.replace(cfg, prior_revision="1" * 40))


def test_sd_folder_without_prior_is_refused(tmp_path, real):
    sd = save_tiny("inpaint", tmp_path / "sd")
    cfg = HealthyConfig(backend="kandinsky22", model_id=str(sd), crop_size=64, steps=2)
    with pytest.raises(ConfigError, match="prior_model_id"):
        run_healthy(real, StageStore(tmp_path / "out"), cfg)
    assert not (tmp_path / "out" / "images").exists()


def test_diffusers_backend_runs_the_combined_pipeline_too(real, tiny_model, tmp_path):
    """`AutoPipelineForInpainting` loads Kandinsky 2.2's combined pipeline, whose tokenizer is the prior's:
    the generic backend runs it (its own prompt, no negative prompt) with the pixel guarantee."""
    cfg = HealthyConfig(backend="diffusers", model_id=str(tiny_model), crop_size=64, steps=2)
    out = StageStore(tmp_path / "out")
    assert run_healthy(real, out, cfg, batch_size=2).done == len(STEMS)
    assert assert_guarantee(real, out, cfg) == len(STEMS)
    assert {r.generator.backend for r in out.records()} == {"diffusers"}
