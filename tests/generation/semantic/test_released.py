"""Sampling from cgDDI's released per-disease models: tiny adapters in the formats of the original training
scripts (diffusers' textual-inversion embedding file, `save_lora_weights`), from disk and the loopback Hub."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from builder.cli import main as cli
from builder.core.store import StageStore
from generation.semantic.training_set import disease_token, prompt_for, sha256_file

REPO = Path(__file__).resolve().parents[3]
TINY = {"mixed_precision": "no", "sampling": "text2img", "sample_steps": 2, "sample_resolution": 32, "sample_batch": 3,
        "shard_size": 3}  # text-to-image: these tests sample without healthy images (v1.1 samples image-to-image)
NAME, DISEASE = "atopic_dermatitis", "eczema/atopic dermatitis"  # a released name that is not the toolkit's slug


def write_released_repo(repo: Path, disease: str) -> Path:
    """A released repo folder for `disease`, written as the original scripts write it (tiny adapters)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from generation.tiny import tiny_text2img_pipeline

    pipe = tiny_text2img_pipeline()
    repo.mkdir(parents=True)
    # textual_inversion.py: {placeholder_token: embedding rows of the new token}, one row
    hidden = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    torch.manual_seed(0)
    save_file({disease_token(disease): torch.randn(1, hidden)}, str(repo / "learned_embeds.safetensors"))
    # train_lora: a peft LoRA on the UNet's attention, saved with save_lora_weights
    pipe.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                     target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet))
    StableDiffusionPipeline.save_lora_weights(repo, unet_lora_layers=layers, safe_serialization=True)
    assert (repo / "pytorch_lora_weights.safetensors").is_file()
    return repo


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny base model, its config, and a released repo folder written as the original scripts write it."""
    from generation.tiny import save_tiny

    root = tmp_path_factory.mktemp("released")
    model = save_tiny("text2img", root / "tiny")
    raw = yaml.safe_load((REPO / "builder/configs/1.1.yaml").read_text())
    raw["semantic"].update(TINY, model_id=str(model), revision=None)
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    repo = write_released_repo(root / "models" / NAME, DISEASE)
    return {"root": root, "config": root / "tiny.yaml", "repo": repo, "model": model}


def _ddi_photos(shared_data: Path) -> list[str]:
    """Every DDI photo whose raw disease joins into DISEASE, by hand from the two tables."""
    with open(REPO / "builder/data/ddi_disease_map.csv", newline="") as f:
        raws = {r["ddi_disease"] for r in csv.DictReader(f) if r["joined_disease"] == DISEASE}
    with open(shared_data / "ddi_metadata.csv", newline="") as f:
        return sorted(f"ddi:{r['DDI_file'][:-4]}" for r in csv.DictReader(f) if r["disease"] in raws)


def _argv(setup, shared_data, out, spec) -> list[str]:
    return ["-q", "generate", "sample", "--config", str(setup["config"]), "--released", spec,
            "--metadata", str(shared_data / "ddi_metadata.csv"), "--out", str(out), "--per-cell", "1",
            "--device", "cpu"]


def test_released_names_cover_the_joined_diseases():
    from builder.core.schema import joined_diseases
    from generation.semantic.released import released_names
    from generation.semantic.training_set import disease_slug

    names = released_names()
    assert len(names) == 65 and sorted(names.values()) == sorted(joined_diseases())
    differ = sorted(n for n, d in names.items() if n != disease_slug(d))
    assert differ == sorted(["acne-cystic", "cutaneous_T-cell_lymphoma", "atopic_dermatitis",
                             "focal-acral-hyperkeratosis", "graft-vs-host_disease", "morphea",
                             "spindle_cell_nevus_of_Reed"])


def test_sample_from_a_local_released_model(setup, shared_data, tmp_path):
    out = tmp_path / "store"
    assert cli(_argv(setup, shared_data, out, str(setup["repo"]))) == 0
    recs = StageStore(out).records()
    photos = _ddi_photos(shared_data)
    assert len(recs) == 3 and len(photos) > 1
    for r in recs:
        assert r.disease == DISEASE and r.prompt == prompt_for(DISEASE, r.skin_tone)
        assert r.source_ids == photos  # the model saw every DDI photo of its disease
        origin = r.params["released_model"]
        assert origin["repo"] == f"local:{NAME}" and origin["photos"] == len(photos)
        assert r.params["training_photos"] == len(photos)
        assert "without a holdout" in origin["trained_on"]
        assert sorted(r.generator.adapters) == sorted(
            f"local:{NAME}/{f}@sha256:{sha256_file(setup['repo'] / f)}"
            for f in ("learned_embeds.safetensors", "pytorch_lora_weights.safetensors"))
    # the strict rule: a DDI holdout holding any of these photos makes every such row test-derived
    from tests.published.test_release import _table, hand_test_set

    held = {f"ddi:{s}" for s in hand_test_set(_table(shared_data))}
    assert all(set(r.source_ids) & held for r in recs)


def test_sample_from_a_released_model_on_the_hub(setup, shared_data, tmp_path):
    from tests.hub_server import HubServer, Repo

    files = {p.name: p.read_bytes() for p in setup["repo"].iterdir()}
    with HubServer() as hub:
        repo = Repo(f"hcarrion/{NAME}", "model", False)
        first = repo.add_commit(None, "release", files)
        repo.tags["v1"] = first.oid
        repo.branches["main"] = repo.add_commit(first.oid, "later", {**files, "README.md": b"x"}).oid
        hub.repos[("model", repo.repo_id)] = repo
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                   HF_HOME=str(tmp_path / "hf_home"), CGDDI_PROGRESS="0", PYTHONPATH=str(REPO))
        p = subprocess.run([sys.executable, "-m", "builder", *_argv(setup, shared_data, tmp_path / "store",
                                                                     f"{repo.repo_id}@v1")],
                           env=env, capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    recs = StageStore(tmp_path / "store").records()
    assert len(recs) == 3
    for r in recs:
        origin = r.params["released_model"]
        assert (origin["repo"], origin["revision"], origin["commit"]) == (repo.repo_id, "v1", first.oid)
        assert all(a.startswith(f"{repo.repo_id}@{first.oid}/") for a in r.generator.adapters)


def test_unknown_name_and_wrong_token_are_refused(setup, shared_data, tmp_path, capsys):
    import shutil

    other = tmp_path / "eczema"  # not a released name: never guessed
    shutil.copytree(setup["repo"], other)
    assert cli(_argv(setup, shared_data, tmp_path / "a", str(other))) == 2
    assert "not one of the 65 names" in capsys.readouterr().err
    wrong = tmp_path / "models" / "morphea"  # scleroderma/morphea's repo holding eczema's token
    shutil.copytree(setup["repo"], wrong)
    assert cli(_argv(setup, shared_data, tmp_path / "b", str(wrong))) == 2
    assert "expected exactly ['<scleroderma/morphea-class>']" in capsys.readouterr().err
    assert cli(["-q", "generate", "sample", "--config", str(setup["config"]), "--released", str(setup["repo"]),
                "--out", str(tmp_path / "c"), "--per-cell", "1"]) == 2
    assert "needs --metadata" in capsys.readouterr().err
