"""Semantic synthetics on a tiny model and real Fitzpatrick17k photos: TI, LoRA, sampling, leakage, processes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from builder.cli import main as cli
from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.schema import SKIN_TONES, Record, fitzpatrick_to_tone, sample_seed
from builder.core.store import StageStore, encode_png
from generation.semantic.sampling import generate_batch, make_plan
from builder.core.splits_file import read_splits
from generation.semantic.training_set import (LeakageError, disease_token, manifest_source_ids, prompt_for,
                                              select_class_images, sha256_file)

DISEASES = ("melanoma", "squamous cell carcinoma", "basal cell carcinoma")
TINY = {"mixed_precision": "no", "sampling": "text2img", "diseases": ["melanoma"], "ti_steps": 2, "ti_batch": 2, "ti_grad_accum": 1,
        "ti_resolution": 32, "lora_steps": 2, "lora_batch": 1, "lora_grad_accum": 2, "lora_resolution": 32,
        "lora_lr": 0.01, "class_images": 3, "checkpoint_every": 1, "sample_steps": 2, "sample_resolution": 32,
        "sample_batch": 2, "shard_size": 3, "budget": 6}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def env(tmp_path_factory, shared_data):
    """A real store of small copies of real photos and masks, a split table (one melanoma held out), and
    healthy synthetics of every real image (opencv backend) as class images."""
    from PIL import Image

    from builder.core.config import HealthyConfig
    from curation.source.masks import read_binary_masks
    from generation.healthy.stage import run_healthy
    from generation.tiny import save_tiny

    root = tmp_path_factory.mktemp("semantic")
    real, healthy = StageStore(root / "real"), StageStore(root / "healthy")
    src = shared_data / "fitz17k_lesions"
    rows = sorted((r for r in csv.DictReader((src / "metadata.csv").open()) if r["label"] in DISEASES),
                  key=lambda r: r["md5hash"])
    recs, splits = [], {}
    for r in rows:
        with Image.open(src / r["image_file"]) as im:
            im = im.convert("RGB")
            im.thumbnail((64, 64))
            rgb = np.asarray(im)
        sid, source = f"real-{r['md5hash'][:12]}", f"fitz17k:{r['md5hash']}"
        real.put_mask(sid, read_binary_masks(src / r["mask_lesions"], src / r["mask_nonskin"], *rgb.shape[:2]))
        fitz = int(r["fitzpatrick_scale"])
        recs.append(Record(sid, "real", fitzpatrick_to_tone(fitz), True, r["label"], [source],
                           image_path=real.put_image(sid, encode_png(rgb)), fitzpatrick=fitz))
        splits[source] = "train"
    real.finish_shard("ingest", recs, [])
    held_out = [r for r in recs if r.disease == "melanoma" and r.skin_tone == "dark"][0]
    splits[held_out.source_ids[0]] = "test"
    (root / "splits.csv").write_text("source_id,split\n" + "".join(f"{k},{v}\n" for k, v in sorted(splits.items())))
    # The held-out image gets a healthy synthetic too: it must never become a class image.
    assert run_healthy(real, healthy, HealthyConfig(backend="opencv")).done == len(recs)
    raw = yaml.safe_load((Path(__file__).parents[3] / "builder/configs/1.1.yaml").read_text())
    model = save_tiny("text2img", root / "tiny")
    raw["semantic"].update(TINY, model_id=str(model), revision=None)
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    return {"root": root, "real": real, "healthy": healthy, "held_out": held_out, "model": model,
            "config": root / "tiny.yaml", "cfg": load_config(str(root / "tiny.yaml")).semantic,
            "splits": read_splits(root / "splits.csv"), "work": root / "work"}


def _args(env, *extra):
    return ["-q", "generate", *extra, "--config", str(env["config"]), "--work-dir", str(env["work"]),
            "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(env):
    """TI then LoRA for melanoma, through the library calls the commands use (keeps the trained modules)."""
    from generation.semantic.build import ensure_lora, ensure_ti

    ti_manifest, text_encoder = ensure_ti(env["real"], env["splits"], "melanoma", env["cfg"], env["work"], device="cpu")
    lora_manifest, pipe = ensure_lora(env["real"], env["splits"], "melanoma", env["cfg"], env["work"],
                                      healthy=env["healthy"], device="cpu")
    return {"ti": ti_manifest, "text_encoder": text_encoder, "lora": lora_manifest, "pipe": pipe}


def _base(env):
    from generation.semantic.trainer import load_pipeline

    return load_pipeline(env["cfg"])


def test_ti_changes_only_the_new_row_and_round_trips(env, trained):
    token = disease_token("melanoma")
    assert token == "<melanoma-class>"
    base = _base(env)
    before = base.text_encoder.get_input_embeddings().weight.detach()
    after = trained["text_encoder"].get_input_embeddings().weight.detach()
    assert after.shape[0] == before.shape[0] + 1
    assert np.array_equal(after[:-1].numpy(), before.numpy()), "rows other than the new token changed"
    init = before[base.tokenizer.encode("skin", add_special_tokens=False)].mean(0)
    assert not np.allclose(after[-1].numpy(), init.numpy()), "the token did not move from its init"
    for name, p in trained["text_encoder"].named_parameters():
        if "token_embedding" not in name:
            assert np.array_equal(p.detach().numpy(), dict(base.text_encoder.named_parameters())[name].detach().numpy())
    base.load_textual_inversion(str(env["work"] / "melanoma/ti/learned_embeds.safetensors"))
    tid = base.tokenizer.convert_tokens_to_ids(token)
    assert np.array_equal(base.text_encoder.get_input_embeddings().weight[tid].detach().numpy(), after[-1].numpy())


def test_training_manifest_lists_exactly_the_train_images(env, trained):
    train_ids = sorted(r.source_ids[0] for r in env["real"].records()
                       if r.disease == "melanoma" and env["splits"][r.source_ids[0]] == "train")
    for kind in ("ti", "lora"):
        m = trained[kind]
        assert sorted(s for im in m["images"] for s in im["source_ids"]) == train_ids
        assert env["held_out"].source_ids[0] not in manifest_source_ids(m)
        for im in m["images"]:
            assert sha256_file(env["real"].image_path(im["sample_id"])) == im["sha256"]
        assert m["adapter"]["sha256"] == sha256_file(env["work"] / "melanoma" / kind / m["adapter"]["file"])
        assert m["model_id"] == str(env["model"]) and m["malignant"] is True
    classes = trained["lora"]["class_images"]
    assert {c["skin_tone"] for c in classes} >= {"medium"}
    assert all(env["splits"][s] == "train" for c in classes for s in c["source_ids"])
    assert (env["work"] / "melanoma/lora/checkpoints").is_dir()
    pool = select_class_images(env["healthy"], env["splits"])
    assert len(pool) == len(env["healthy"].records()) - 1
    assert all(env["held_out"].source_ids[0] not in c.source_ids for c in pool)


def test_lora_save_load_reproduces_the_same_image(env, trained):
    cfg, prompt = env["cfg"], [prompt_for("melanoma", "dark")]
    in_memory = generate_batch(trained["pipe"], prompt, [7], cfg)[0]
    fresh = _base(env)
    fresh.load_textual_inversion(str(env["work"] / "melanoma/ti/learned_embeds.safetensors"))
    without = generate_batch(fresh, prompt, [7], cfg)[0]
    fresh.load_lora_weights(str(env["work"] / "melanoma/lora"), weight_name="pytorch_lora_weights.safetensors")
    loaded = generate_batch(fresh, prompt, [7], cfg)[0]
    assert np.array_equal(in_memory, loaded)
    assert not np.array_equal(loaded, without), "the LoRA did not change the image"


def test_training_refuses_a_test_split_image(env, trained, capsys):
    from generation.semantic.build import ensure_ti

    bad = env["held_out"]
    with pytest.raises(LeakageError, match=bad.source_ids[0]):
        ensure_ti(env["real"], env["splits"], "melanoma", env["cfg"], env["root"] / "w2", device="cpu",
                  only_ids=[bad.sample_id])
    code = cli(_args(env, "train-ti")[:2] + ["train-ti", "--real", str(env["real"].root), "--splits",
                                               str(env["root"] / "splits.csv"), "--disease", "melanoma",
                                               "--images", bad.source_ids[0]] + _args(env, "x")[3:])
    assert code == 2
    err = capsys.readouterr().err
    assert bad.source_ids[0] in err and "test" in err
    assert not (env["root"] / "w2").exists()


def test_config_is_checked_before_any_model_loads(env, tmp_path):
    import dataclasses

    import torch

    from generation.semantic.trainer import check_config

    with pytest.raises(ConfigError, match="fp16"):
        check_config(dataclasses.replace(env["cfg"], mixed_precision="fp16"), "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            check_config(env["cfg"], "cuda")
    with pytest.raises(ConfigError, match="multiple of 8"):
        check_config(dataclasses.replace(env["cfg"], sample_resolution=30), "cpu")
    from generation.semantic.training_set import check_distinct_slugs

    with pytest.raises(ConfigError, match="share the folder name"):
        check_distinct_slugs(["basal cell carcinoma", "basal-cell carcinoma"])
    plan = make_plan(["b", "a"], budget=8)
    assert [(p.disease, p.tone) for p in plan][:3] == [("a", "light")] * 2 + [("a", "medium")]
    assert len(plan) == 8 and len(make_plan(["a"], per_cell=2)) == 6


def test_sampling_records_have_complete_lineage_and_resume(env, trained, capsys):
    out = env["root"] / "out1"
    assert cli(_args(env, "sample", "--out", str(out), "--per-cell", "2")) == 0
    store, manifests = StageStore(out), trained
    recs = store.records()
    assert len(recs) == 6 and sorted(r.skin_tone for r in recs) == sorted(SKIN_TONES * 2)
    want_sources = sorted(set(manifest_source_ids(manifests["ti"])) | set(manifest_source_ids(manifests["lora"])))
    for r in recs:
        assert r.kind == "semantic" and r.disease == "melanoma" and r.malignant is True and r.fitzpatrick is None
        assert r.source_ids == want_sources and env["held_out"].source_ids[0] not in r.source_ids
        assert r.prompt == prompt_for("melanoma", r.skin_tone) and r.seed == sample_seed(r.sample_id, 0)
        assert r.generator.backend == "diffusers" and r.generator.model_id == f"local:{env['model'].name}"
        for a in r.generator.adapters:
            name, h = a.split("@sha256:")
            assert sha256_file(env["work"] / name) == h
        assert set(r.params) >= {"negative_prompt", "steps", "guidance", "scheduler", "resolution", "adapter_sha256"}
        assert store.read_image(r.sample_id).shape == (32, 32, 3)
    first = {r.sample_id: store.read_image_bytes(r) for r in recs}
    # A kill -9 mid-run leaves a shard without its records file: the rerun redoes only that shard.
    shard = sorted((out / "records").glob("*.jsonl"))[0]
    shard.unlink()
    assert cli(_args(env, "sample", "--out", str(out), "--per-cell", "2")) == 0
    assert "done=3 skipped=3" in capsys.readouterr().out
    assert {r.sample_id: store.read_image_bytes(r) for r in store.records()} == first
    assert cli(_args(env, "sample", "--out", str(out), "--per-cell", "3")) == 2
    assert "other settings or inputs (semantic.plan changed" in capsys.readouterr().err


@pytest.mark.slow  # two sampling processes
def test_two_processes_give_the_same_set_as_one(env, trained):
    one, two = env["root"] / "one", env["root"] / "two"
    assert cli(_args(env, "sample", "--out", str(one))) == 0  # one thread (fixture), like each torchrun worker
    # `--cpu --num_processes 2` starts ONE process in accelerate 1.15 (its simple launcher); the torchrun
    # launcher behind `--multi_gpu` starts two and falls back to gloo on a machine without CUDA.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "builder",
           *_args(env, "sample", "--out", str(two))]
    res = subprocess.run(cmd, cwd=Path(__file__).parents[3], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "(process 1/2)" in res.stdout and "(process 2/2)" in res.stdout
    a, b = StageStore(one), StageStore(two)
    assert [r.to_json() for r in a.records()] == [r.to_json() for r in b.records()]
    assert len(list((two / "records").glob("*.jsonl"))) == 2
    diffs = [np.abs(a.read_image(r.sample_id).astype(int) - b.read_image(r.sample_id)).max() for r in a.records()]
    assert max(diffs) == 0, diffs


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys; from builder.cli import make_parser; make_parser(); "
            "assert not {'torch', 'diffusers', 'transformers'} & set(sys.modules), sorted(sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[3], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


def test_training_commands_skip_finished_models(env, trained, capsys):
    """Same inputs, same fingerprint: the commands find the finished models and do not retrain."""
    before = {k: sha256_file(env["work"] / "melanoma" / k / "manifest.json") for k in ("ti", "lora")}
    common = ["--real", str(env["real"].root), "--splits", str(env["root"] / "splits.csv"),
              "--model", str(env["model"])]
    assert cli(_args(env, "train-ti") + common) == 0
    assert cli(_args(env, "train-lora") + common + ["--healthy", str(env["healthy"].root)]) == 0
    out = capsys.readouterr().out
    assert "[train-ti] melanoma: <melanoma-class> from 2 images" in out
    assert "[train-lora] melanoma: 2 instance" in out
    assert before == {k: sha256_file(env["work"] / "melanoma" / k / "manifest.json") for k in ("ti", "lora")}


def test_run_semantic_samples_the_budget_with_finished_models(env, trained):
    import dataclasses

    from generation.semantic.build import run_semantic

    out = StageStore(env["root"] / "build_out")
    zero = run_semantic(env["real"], env["splits"], out, dataclasses.replace(env["cfg"], budget=0), device="cpu",
                        work_dir=env["work"], healthy=env["healthy"])
    assert zero.done == 0 and not out.root.exists()
    summary = run_semantic(env["real"], env["splits"], out, dataclasses.replace(env["cfg"], budget=4), device="cpu",
                           work_dir=env["work"], healthy=env["healthy"])
    assert summary.done == 4 and not summary.rejected and len(out.records()) == 4
    assert [r.skin_tone for r in out.records()].count("light") in (1, 2)


def test_base_model_priors_stand_in_when_no_healthy_image_has_the_tone(env, tmp_path):
    """DreamBooth's fallback: class images from the base model, derived from no real image, cached."""
    from generation.semantic.lora import generate_prior_images
    from generation.semantic.training_set import manifest_source_ids

    priors = generate_prior_images(env["cfg"], ["dark"], 3, tmp_path, "cpu")
    assert [(p.sample_id, p.skin_tone, p.source_ids) for p in priors] == [("prior-dark-0000", "dark", ())]
    stamp = (tmp_path / "dark-0000.png").stat().st_mtime_ns
    assert generate_prior_images(env["cfg"], ["dark"], 3, tmp_path, "cpu") == priors
    assert (tmp_path / "dark-0000.png").stat().st_mtime_ns == stamp
    assert manifest_source_ids({"images": [], "class_images": [p.to_json() for p in priors]}) == []


def test_lora_resumes_from_its_checkpoint_to_the_same_weights(env, trained, tmp_path, caplog):
    """A run killed after its step-1 checkpoint (no manifest, no weights) finishes with the same adapter."""
    import logging
    import shutil

    from generation.semantic.build import ensure_lora

    work = tmp_path / "work"
    shutil.copytree(env["work"] / "melanoma", work / "melanoma")
    (work / "melanoma/lora/manifest.json").unlink()
    (work / "melanoma/lora/pytorch_lora_weights.safetensors").unlink()
    assert [p.name for p in (work / "melanoma/lora/checkpoints").iterdir()] == ["step-0000001.pt"]
    with caplog.at_level(logging.INFO, logger="generation.semantic.lora"):
        manifest, _ = ensure_lora(env["real"], env["splits"], "melanoma", env["cfg"], work, healthy=env["healthy"],
                                  device="cpu")
    assert "resuming LoRA from" in caplog.text
    assert manifest["adapter"]["sha256"] == trained["lora"]["adapter"]["sha256"]


def test_ti_resumes_from_its_checkpoint_to_the_same_embedding(env, trained, tmp_path, caplog):
    import logging
    import shutil

    from generation.semantic.build import ensure_ti

    work = tmp_path / "work"
    shutil.copytree(env["work"] / "melanoma/ti", work / "melanoma/ti")
    (work / "melanoma/ti/manifest.json").unlink()
    (work / "melanoma/ti/learned_embeds.safetensors").unlink()
    with caplog.at_level(logging.INFO, logger="generation.semantic.textual_inversion"):
        manifest, _ = ensure_ti(env["real"], env["splits"], "melanoma", env["cfg"], work, device="cpu")
    assert "resuming textual inversion from" in caplog.text
    assert manifest["adapter"]["sha256"] == trained["ti"]["adapter"]["sha256"]


@pytest.mark.gpu
def test_fp16_training_and_sampling_on_cuda(env, tmp_path):
    """The GPU path end to end: fp16 frozen weights, fp32 trainable rows/LoRA, fp16 sampling."""
    import dataclasses

    from generation.semantic.build import run_semantic

    cfg = dataclasses.replace(env["cfg"], mixed_precision="fp16", budget=3)
    out = StageStore(tmp_path / "out")
    summary = run_semantic(env["real"], env["splits"], out, cfg, device="cuda", work_dir=tmp_path / "work",
                           healthy=env["healthy"])
    assert summary.done + sum(summary.rejected.values()) == 3
    assert all(r.params["resolution"] == cfg.sample_resolution for r in out.records())
