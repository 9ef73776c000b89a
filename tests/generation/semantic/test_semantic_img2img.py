"""Semantic sampling as published: image-to-image from healthy synthetics on the tiny SD pipeline, the
training-photo count on every row, the strict rule through source_ids, and LoRA at batch 16."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from builder.cli import main as cli
from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.store import StageStore
from curation.leakage import apply_splits
from generation.semantic.build import photo_diseases
from generation.semantic.sampling import load_model, make_plan, sample
from generation.semantic.training_set import sha256_file
from tests.generation.semantic.test_semantic import env, trained  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def img2img(env):  # noqa: F811
    """The tiny config with `sampling: img2img` (the paper's strength), and two healthy images: the held-out
    test photo's and one train photo's."""
    raw = yaml.safe_load(env["config"].read_text())
    raw["semantic"].update(sampling="img2img", strength=0.725)
    path = env["root"] / "img2img.yaml"
    path.write_text(yaml.safe_dump(raw))
    by_parent = {r.parent_id: r for r in env["healthy"].records()}
    held = by_parent[env["held_out"].sample_id].sample_id
    other = sorted(r.sample_id for r in env["healthy"].records() if r.sample_id != held)[0]
    return {"config": path, "cfg": load_config(str(path)).semantic, "held": held, "other": other}


def _sample(env, img2img, out, ids, cfg=None):  # noqa: F811
    models = {"melanoma": load_model(env["work"], "melanoma")}
    plan = make_plan(["melanoma"], per_cell=1, healthy=ids)
    return sample(StageStore(out), models, plan, cfg or img2img["cfg"], device="cpu", healthy=env["healthy"],
                  photo_diseases=photo_diseases(env["real"]))


def test_plan_is_disease_x_healthy_x_tone_x_n():
    plan = make_plan(["b", "a"], per_cell=2, healthy=["h2", "h1"])
    assert len(plan) == 2 * 2 * 3 * 2
    assert [(p.disease, p.healthy, p.tone, p.index) for p in plan[:3]] == [
        ("a", "h1", "light", 0), ("a", "h1", "light", 1), ("a", "h1", "medium", 0)]
    assert make_plan(["a"], budget=4, healthy=["h1", "h2"])[-1].healthy == "h2"


def test_rows_carry_their_healthy_prompt_and_training_photos(env, trained, img2img, tmp_path):  # noqa: F811
    assert _sample(env, img2img, tmp_path / "a", [img2img["other"]]).done == 3
    store, healthy = StageStore(tmp_path / "a"), {r.sample_id: r for r in env["healthy"].records()}
    photos = {s for im in trained["lora"]["images"] for s in im["source_ids"]}
    for r in store.records():
        start = healthy[r.parent_id]
        assert r.parent_id == img2img["other"] and set(start.source_ids) <= set(r.source_ids)
        assert r.params["sampling"] == "img2img" and r.params["strength"] == 0.725
        assert r.params["healthy_sha256"] == sha256_file(env["healthy"].image_path(start.sample_id))
        assert r.params["training_photos"] == len(photos) > 0
        # the prompt photos' diseases, which the paper's leakage rule reads from the published row
        real = {x.source_ids[0]: x.disease for x in env["real"].records()}
        assert r.params["healthy_prompt_photos"] == {s: real[s] for s in start.source_ids}


def test_img2img_is_deterministic_and_starts_from_the_healthy_image(env, trained, img2img, tmp_path):  # noqa: F811
    ids = [img2img["other"]]
    _sample(env, img2img, tmp_path / "a", ids)
    _sample(env, img2img, tmp_path / "b", ids)
    a, b = StageStore(tmp_path / "a"), StageStore(tmp_path / "b")
    assert [r.to_json() for r in a.records()] == [r.to_json() for r in b.records()]
    assert all(np.array_equal(a.read_image(r.sample_id), b.read_image(r.sample_id)) for r in a.records())
    # The same plan from noise (strength 1) paints other pixels: the healthy image conditions the sample.
    _sample(env, img2img, tmp_path / "c", ids, dataclasses.replace(img2img["cfg"], strength=1.0))
    c = StageStore(tmp_path / "c")
    near = [np.abs(a.read_image(x.sample_id).astype(int) - c.read_image(y.sample_id)).mean()
            for x, y in zip(a.records(), c.records())]
    assert all(d > 0 for d in near)


def test_healthy_image_of_a_test_photo_never_conditions_a_train_row(env, trained, img2img, tmp_path):  # noqa: F811
    _sample(env, img2img, tmp_path / "a", [img2img["held"], img2img["other"]])
    recs = StageStore(tmp_path / "a").records()
    test_photo = env["held_out"].source_ids[0]
    kept, _report, rejected = apply_splits(recs, env["splits"])
    assert not rejected and len(kept) == 6
    split_of_parent = {}
    for r in kept:
        split_of_parent.setdefault(r.parent_id, set()).add(r.split)
        assert (test_photo in r.source_ids) == (r.parent_id == img2img["held"])
    assert split_of_parent == {img2img["held"]: {"test"}, img2img["other"]: {"train"}}


def test_command_samples_from_healthy_store(env, trained, img2img, tmp_path, capsys):  # noqa: F811
    args = ["-q", "generate", "sample", "--config", str(img2img["config"]), "--work-dir", str(env["work"]),
            "--device", "cpu", "--out", str(tmp_path / "o"), "--budget", "3"]
    assert cli(args) == 2 and "--healthy" in capsys.readouterr().err  # img2img needs its healthy images
    assert cli(args + ["--healthy", str(env["healthy"].root)]) == 0
    recs = StageStore(tmp_path / "o").records()
    first = sorted(r.sample_id for r in env["healthy"].records())[0]
    assert len(recs) == 3 and {r.parent_id for r in recs} == {first}
    text = ["-q", "generate", "sample", "--config", str(env["config"]), "--work-dir", str(env["work"]),
            "--device", "cpu", "--out", str(tmp_path / "t"), "--budget", "3", "--healthy", str(env["healthy"].root)]
    assert cli(text) == 2 and "semantic.sampling is 'text2img'" in capsys.readouterr().err


def test_sampling_settings_are_checked(env):  # noqa: F811
    from generation.semantic.trainer import check_config

    with pytest.raises(ConfigError, match="semantic.sampling='inpaint'"):
        check_config(dataclasses.replace(env["cfg"], sampling="inpaint"), "cpu")
    with pytest.raises(ConfigError, match="semantic.strength=0.0"):
        check_config(dataclasses.replace(env["cfg"], strength=0.0), "cpu")


def test_lora_at_batch_16_with_gradient_checkpointing(env, trained, tmp_path):  # noqa: F811
    """The paper's batch of 16. Checkpointing saves memory; recomputed activations move the weights only by
    float rounding, and the model's fingerprint names it (models trained without it keep theirs)."""
    import shutil

    from safetensors.numpy import load_file

    from generation.semantic.build import ensure_lora

    cfg = dataclasses.replace(env["cfg"], lora_batch=16, lora_grad_accum=1, lora_steps=1, checkpoint_every=5)
    manifests = []
    for flag in (False, True):
        work = tmp_path / str(flag)
        shutil.copytree(env["work"] / "melanoma/ti", work / "melanoma/ti")
        manifest, _ = ensure_lora(env["real"], env["splits"], "melanoma",
                                  dataclasses.replace(cfg, lora_gradient_checkpointing=flag), work,
                                  healthy=env["healthy"], device="cpu")
        assert manifest["settings"]["lora_batch"] == 16
        manifests.append((manifest, load_file(str(work / "melanoma/lora/pytorch_lora_weights.safetensors"))))
    (plain, a), (ckpt, b) = manifests
    assert "lora_gradient_checkpointing" not in plain["settings"] and ckpt["settings"]["lora_gradient_checkpointing"]
    assert plain["fingerprint"] != ckpt["fingerprint"]
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert plain["adapter"]["sha256"] != trained["lora"]["adapter"]["sha256"]


def test_run_semantic_samples_img2img_from_the_builds_healthy_store(env, trained, img2img, tmp_path):  # noqa: F811
    """The build's path: `run_semantic` plans over the healthy store it also takes class images from."""
    from generation.semantic.build import run_semantic

    out = StageStore(tmp_path / "out")
    cfg = dataclasses.replace(img2img["cfg"], budget=3)
    summary = run_semantic(env["real"], env["splits"], out, cfg, device="cpu", work_dir=env["work"],
                           healthy=env["healthy"])
    first = sorted(r.sample_id for r in env["healthy"].records())[0]
    assert summary.done == 3 and {r.parent_id for r in out.records()} == {first}
    assert sorted(r.skin_tone for r in out.records()) == ["dark", "light", "medium"]
    with pytest.raises(ConfigError, match="--healthy"):  # refused before any model trains
        run_semantic(env["real"], env["splits"], StageStore(tmp_path / "o2"), cfg, device="cpu",
                     work_dir=tmp_path / "untouched", healthy=None)
    assert not (tmp_path / "untouched").exists()
