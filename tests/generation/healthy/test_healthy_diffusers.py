"""Healthy synthetics with the diffusers backend: a tiny random-weight SD inpainting pipeline from configs."""
from __future__ import annotations

import dataclasses
import shutil

import pytest

from builder.core.config import HealthyConfig
from builder.core.errors import ConfigError
from builder.core.store import StageStore
from generation.healthy.stage import run_healthy
from generation.tiny import save_tiny
from tests.healthy_fixtures import fitz17k_real_store, sddi_real_store
from tests.generation.healthy.test_healthy import _files, assert_guarantee

STEMS = ["000001", "000006", "000007", "000009", "000010"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny("inpaint", tmp_path_factory.mktemp("tiny") / "inpaint")


@pytest.fixture(scope="module")
def cfg(tiny_model):
    # 64 px windows: the 100x130 photos are cropped around the region and pasted back.
    return HealthyConfig(backend="diffusers", model_id=str(tiny_model), crop_size=64, steps=2)


@pytest.fixture(scope="module")
def healed(shared_data, tmp_path_factory, cfg):
    root = tmp_path_factory.mktemp("diffusers")
    real = StageStore(root / "real")
    sddi_real_store(shared_data, real, STEMS, size=(100, 130))
    out = StageStore(root / "healthy")
    summary = run_healthy(real, out, cfg, batch_size=3, shard_size=4)
    return real, out, summary, root


def test_tiny_pipeline_heals_inside_region_only(healed, cfg):
    real, out, summary, _ = healed
    assert summary.done == len(STEMS)
    assert assert_guarantee(real, out, cfg) == len(STEMS)


def test_records_name_model_prompt_seed_and_window(healed, cfg, tiny_model):
    real, out, _, _ = healed
    tones = {r.sample_id: r.skin_tone for r in real.records()}
    seeds = set()
    for rec in out.records():
        assert rec.prompt == f"An image of healthy skin on a {tones[rec.parent_id]}-skinned individual"
        assert rec.generator.backend == "diffusers" and rec.generator.model_id == f"local:{tiny_model.name}"
        assert rec.generator.revision.startswith("local-")  # a local folder is pinned by content
        assert rec.params["steps"] == 2 and rec.params["dtype"] == "float32" and rec.params["device"] == "cpu"
        x0, y0, x1, y1 = rec.params["window"]
        assert (x1 - x0, y1 - y0) == (64, 64)  # model-sized crop, photo not downscaled
        seeds.add(rec.seed)
    assert len(seeds) == len(STEMS)


def test_same_config_same_bytes_any_world_size(healed, cfg):
    real, out, _, root = healed
    again = StageStore(root / "again")
    for rank in range(2):
        run_healthy(real, again, cfg, batch_size=3, shard_size=4, rank=rank, world_size=2)
    assert _files(again) == _files(out)


def test_model_folder_location_does_not_change_ids_or_pixels(healed, cfg, tiny_model, tmp_path):
    real, out, _, _ = healed
    moved = shutil.copytree(tiny_model, tmp_path / "elsewhere" / "model")
    again = StageStore(tmp_path / "out")
    run_healthy(real, again, dataclasses.replace(cfg, model_id=str(moved)), batch_size=3, shard_size=4)
    images = lambda files: {k: v for k, v in files.items() if k.startswith(("images/", "masks/"))}  # noqa: E731
    assert images(_files(again)) == images(_files(out))
    assert {r.generator.model_id for r in again.records()} == {"local:model"}  # no private path


def test_region_larger_than_window_is_scaled_into_it(shared_data, tmp_path, cfg):
    real = StageStore(tmp_path / "real")
    fitz17k_real_store(shared_data, real, limit=2)  # photos of ~400 px, regions over 64 px
    out = StageStore(tmp_path / "healthy")
    assert run_healthy(real, out, cfg, batch_size=2).done == 2
    assert assert_guarantee(real, out, cfg) == 2
    for rec in out.records():
        x0, y0, x1, y1 = rec.params["window"]
        bx0, by0, bx1, by1 = rec.params["region_box"]
        assert x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1


def test_model_with_empty_tokenizer_fails_clearly(tiny_model, tmp_path, cfg, shared_data):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    for f in (broken / "tokenizer").iterdir():
        if f.name != "tokenizer_config.json":
            f.unlink()
    real = StageStore(tmp_path / "real")
    sddi_real_store(shared_data, real, STEMS[:1], size=(80, 80))
    with pytest.raises(ConfigError, match="tokenizer"):
        run_healthy(real, StageStore(tmp_path / "out"), dataclasses.replace(cfg, model_id=str(broken)))


def test_nan_output_becomes_a_rejection_not_a_black_patch(healed, cfg, tiny_model, tmp_path):
    import torch
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline.from_pretrained(tiny_model)
    with torch.no_grad():
        pipe.vae.post_quant_conv.weight.fill_(float("nan"))  # what an overflowing fp16 VAE yields
    pipe.save_pretrained(tmp_path / "nan-vae")
    real, _, _, _ = healed
    out = StageStore(tmp_path / "out")
    summary = run_healthy(real, out, dataclasses.replace(cfg, model_id=str(tmp_path / "nan-vae")))
    assert summary.done == 0 and dict(summary.rejected) == {"non_finite_output": len(STEMS)}
    assert not (out.root / "images").exists()


def test_missing_model_fails_clearly(tmp_path, cfg, shared_data):
    real = StageStore(tmp_path / "real")
    sddi_real_store(shared_data, real, STEMS[:1], size=(80, 80))
    with pytest.raises(ConfigError, match="no-such-model' does not exist"):  # refused before any work
        run_healthy(real, StageStore(tmp_path / "out"),
                    dataclasses.replace(cfg, model_id=str(tmp_path / "no-such-model")))
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ConfigError, match="cannot load inpainting model"):
        run_healthy(real, StageStore(tmp_path / "out"),
                    dataclasses.replace(cfg, model_id=str(tmp_path / "empty-model")))


def test_fp16_on_cpu_refused(tmp_path, cfg, shared_data):
    real = StageStore(tmp_path / "real")
    sddi_real_store(shared_data, real, STEMS[:1], size=(80, 80))
    with pytest.raises(ConfigError, match="float16"):
        run_healthy(real, StageStore(tmp_path / "out"), dataclasses.replace(cfg, dtype="float16"))


def test_command_with_model_and_config_file(healed, tiny_model, tmp_path, capsys):
    import yaml

    from builder.cli import main
    from builder.core.config import CONFIG_DIR

    real, out, _, _ = healed
    raw = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())
    raw["healthy"] = {"backend": "diffusers", "crop_size": 64, "steps": 2}  # the module's cfg, through a file
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    argv = ["generate", "healthy", "--source", str(real.root), "--out", str(tmp_path / "o"),
            "--config", str(cfg_path), "--model", str(tiny_model), "--batch-size", "3", "--shard-size", "4"]
    assert main(argv) == 0
    assert f"done={len(STEMS)}" in capsys.readouterr().out
    # Same settings as the module's run_healthy call: the very same files.
    assert _files(StageStore(tmp_path / "o" / "healthy")) == _files(out)


@pytest.mark.gpu
def test_cuda_fp16_batches_keep_pixel_guarantee(healed, cfg):
    real, _, _, root = healed
    out = StageStore(root / "cuda")
    assert run_healthy(real, out, cfg, device="cuda", batch_size=4).done == len(STEMS)
    assert assert_guarantee(real, out, cfg) == len(STEMS)
    assert all(r.params["dtype"] == "float16" for r in out.records())
