"""Automatic masks: CPU and learned backends on real Fitzpatrick17k photos with their masks hidden, the gate, lineage."""
from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from builder.core.config import MasksConfig, load_config
from builder.core.errors import BuildError, ConfigError
from builder.core.schema import LABEL_LESION, LABEL_VALUES
from builder.core.store import StageStore
from curation.source.ingest import ingest_source
from curation.source.masks import AUTO_INDEX, read_auto_index, read_binary_masks, read_sddi_mask
from curation.source.automasks.run import run_masks


def fitz_source(shared_data: Path, dst: Path, n: int, keep_masks_every: int = 0) -> list[dict]:
    """The first n real photos with metadata; hand masks kept for every k-th row only (0: none)."""
    src = shared_data / "fitz17k_lesions"
    rows = list(csv.DictReader(open(src / "metadata.csv")))[:n]
    (dst / "images").mkdir(parents=True)
    (dst / "masks").mkdir()
    with open(dst / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for i, r in enumerate(rows):
        shutil.copy(src / r["image_file"], dst / "images")
        if keep_masks_every and i % keep_masks_every == 0:
            for part in ("lesions", "nonskin"):
                shutil.copy(src / "masks" / f"{r['md5hash']}_{part}.png", dst / "masks")
    return rows


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(1, a.sum() + b.sum())


def test_cpu_masks_on_real_photos_with_masks_hidden(tmp_path, shared_data):
    rows = fitz_source(shared_data, tmp_path / "src", 8)
    cfg = MasksConfig(min_confidence=0.0, batch_size=4)
    summary = run_masks(tmp_path / "src", None, tmp_path / "out", cfg)
    assert summary.done == 8 and not summary.rejected
    index = read_auto_index(tmp_path / "out")
    assert len(index) == 8 and {e["method"] for e in index.values()} == {"cpu-grabcut"}
    scores = []
    for r in rows:
        e = index[f"fitz17k:{r['md5hash']}"]
        lm = read_sddi_mask(tmp_path / "out" / e["file"], int(r["height"]), int(r["width"]))
        assert set(np.unique(lm)) <= set(LABEL_VALUES) and 0 <= e["confidence"] <= 1
        hand = read_binary_masks(shared_data / "fitz17k_lesions" / r["mask_lesions"], None,
                                 int(r["height"]), int(r["width"]))
        scores.append(dice(lm == LABEL_LESION, hand == LABEL_LESION))
    assert np.median(scores) > 0.5  # Otsu on grayscale reaches ~0.26 on these photos
    assert sorted(p.name for p in (tmp_path / "out" / "sheets").iterdir()) == ["batch-00000.png", "batch-00001.png"]


def test_masks_are_deterministic_and_resume(tmp_path, shared_data):
    fitz_source(shared_data, tmp_path / "src", 3)
    cfg = MasksConfig(min_confidence=0.0, batch_size=2)
    run_masks(tmp_path / "src", None, tmp_path / "a", cfg)
    run_masks(tmp_path / "src", None, tmp_path / "b", cfg)
    for f in sorted((tmp_path / "a").glob("*.npy")):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    (tmp_path / "b" / "markers" / "batch-00001.json").unlink()  # an interrupted run: last batch unfinished
    again = run_masks(tmp_path / "src", None, tmp_path / "b", cfg)
    assert again.skipped == 2 and (tmp_path / "a" / AUTO_INDEX).read_bytes() == (tmp_path / "b" / AUTO_INDEX).read_bytes()
    with pytest.raises(ConfigError, match="min_confidence changed"):
        run_masks(tmp_path / "src", None, tmp_path / "b", dataclasses.replace(cfg, min_confidence=0.5))
    # the build's own work folder: the same change reruns the step (every batch) instead of refusing
    rerun = run_masks(tmp_path / "src", None, tmp_path / "b", dataclasses.replace(cfg, min_confidence=0.5),
                      on_change="reset")
    assert rerun.skipped == 0 and rerun.status.startswith("rerun because masks.min_confidence changed")


def test_mask_batches_are_shards_split_by_rank(tmp_path, shared_data):
    fitz_source(shared_data, tmp_path / "src", 3)
    cfg = MasksConfig(min_confidence=0.0, batch_size=1)
    run_masks(tmp_path / "src", None, tmp_path / "one", cfg)
    for rank in (0, 1):  # two processes, each its own batches (i % 2 == rank), into one folder
        run_masks(tmp_path / "src", None, tmp_path / "two", cfg, rank=rank, world_size=2)
    assert sorted(p.name for p in (tmp_path / "two" / "markers").iterdir()) == [
        "batch-00000.json", "batch-00001.json", "batch-00002.json"]
    final = run_masks(tmp_path / "src", None, tmp_path / "two", cfg)  # nothing left to do: writes the index
    assert final.skipped == 3
    assert (tmp_path / "one" / AUTO_INDEX).read_bytes() == (tmp_path / "two" / AUTO_INDEX).read_bytes()


def test_low_confidence_is_rejected_and_reaches_healthy(tmp_path, shared_data):
    fitz_source(shared_data, tmp_path / "src", 4, keep_masks_every=2)  # rows 0 and 2 keep hand masks
    summary = run_masks(tmp_path / "src", None, tmp_path / "auto", MasksConfig(min_confidence=1.0))
    assert summary.rejected == {"mask_low_confidence": 2} and not list((tmp_path / "auto").glob("*.npy"))
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, auto_masks=tmp_path / "auto", workers=1)
    recs = real.records()
    assert len(recs) == 4 and all(not r.auto_masks for r in recs)
    rejected = [r for r in recs if r.mask_rejection]
    assert len(rejected) == 2 and all(not real.mask_path(r.sample_id).exists() for r in rejected)
    assert all(r.params == {"mask_rejected": "mask_low_confidence", "mask_rejected_detail": r.mask_rejection.detail}
               for r in rejected)  # still published in a real row's params
    from generation.healthy.stage import run_healthy

    out = StageStore(tmp_path / "healthy")
    result = run_healthy(real, out, load_config("1.1-notebook").healthy)  # the weight-free generator
    assert result.done == 2 and result.rejected == {"mask_low_confidence": 2}
    assert all("confidence" in r.detail for r in out.rejections())


def test_ingest_carries_auto_mask_lineage_to_healthy(tmp_path, shared_data):
    fitz_source(shared_data, tmp_path / "src", 4, keep_masks_every=2)
    run_masks(tmp_path / "src", None, tmp_path / "auto", MasksConfig(min_confidence=0.0))
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, auto_masks=tmp_path / "auto", workers=1)
    recs = real.records()
    auto = [r for r in recs if r.auto_masks]
    assert len(auto) == 2 and all(real.mask_path(r.sample_id).exists() for r in recs)
    assert {m.method for r in auto for m in r.auto_masks} == {"cpu-grabcut"}
    assert all(r.auto_masks[0].source_id == r.source_ids[0] for r in auto)
    from generation.healthy.stage import run_healthy

    out = StageStore(tmp_path / "healthy")
    run_healthy(real, out, load_config("1.1-notebook").healthy)  # the weight-free generator
    healthy = out.records()
    assert sorted(bool(h.auto_masks) for h in healthy) == [False, False, True, True]
    row = healthy[0].to_row(b"")
    assert isinstance(row["auto_masks"], list)


def test_masks_written_into_the_masks_folder_are_found_by_ingest(tmp_path, shared_data):
    """`generate masks --out SOURCE/masks`: ingest finds them where it finds masks, and knows them automatic."""
    fitz_source(shared_data, tmp_path / "src", 3)
    run_masks(tmp_path / "src", None, tmp_path / "src" / "masks", MasksConfig(min_confidence=0.0))
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, workers=1)
    recs = real.records()
    assert len(recs) == 3 and all(r.auto_masks for r in recs)


def test_bad_settings_fail_first(tmp_path):
    from curation.source.automasks.run import check_inputs

    for bad in (MasksConfig(backend="sam"), MasksConfig(min_confidence=2.0), MasksConfig(backend="learned")):
        with pytest.raises(ConfigError, match="masks"):
            check_inputs(bad)


def tiny_vision_model(folder: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model
    import torch

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             patch_size=14, image_size=56)).save_pretrained(folder)
    return folder


def test_learned_backend_end_to_end_on_a_tiny_random_model(tmp_path, shared_data):
    fitz_source(shared_data, tmp_path / "src", 8, keep_masks_every=2)  # 4 hand masks train the head
    model = tiny_vision_model(tmp_path / "dinov2-tiny")
    cfg = MasksConfig(backend="learned", model_id=str(model), min_confidence=0.0)
    summary = run_masks(tmp_path / "src", None, tmp_path / "auto", cfg)
    assert summary.done == 4
    index = read_auto_index(tmp_path / "auto")
    assert {(e["method"], e["version"]) for e in index.values()} == {("learned-probe", "1+vet1")}
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, auto_masks=tmp_path / "auto", workers=1)
    assert sum(bool(r.auto_masks) for r in real.records()) == 4
    with pytest.raises(ConfigError, match="revision"):
        run_masks(tmp_path / "src", None, tmp_path / "x", dataclasses.replace(cfg, model_id="facebook/dinov2-small"))


def test_versions_turn_automatic_masks_on_only_in_1_2():
    assert load_config("1.1").masks.auto is False
    assert load_config("1.2").masks.auto is True


@pytest.mark.slow  # a real-data v1.2 build
def test_build_with_automatic_masks_uses_every_photo_that_passes(tmp_path, shared_data):
    from builder.build import BuildOptions, build
    from builder.core.config import CONFIG_DIR

    fitz_source(shared_data, tmp_path / "src", 8, keep_masks_every=2)
    text = (CONFIG_DIR / "1.2.yaml").read_text().replace("budget: 120", "budget: 12")
    (tmp_path / "1.2.yaml").write_text(text)
    cfg = load_config(str(tmp_path / "1.2.yaml"))
    result = build(cfg, BuildOptions(out=tmp_path / "out", source=tmp_path / "src", workers=1))
    index = read_auto_index(tmp_path / "out" / ".work" / "1.2" / "auto_masks")
    passed = {sid for sid, e in index.items() if e["accepted"]}
    healthy = StageStore(tmp_path / "out" / ".work" / "1.2" / "healthy").records()
    assert passed and passed <= {s for h in healthy for s in h.source_ids}
    assert {m.source_id for h in healthy for m in h.auto_masks} == passed
    assert len(healthy) == 4 + len(passed)
    card = (result.out_dir / "README.md").read_text()
    assert "masks automatic, method cpu-grabcut 1+vet1" in card
    import datasets

    ds = datasets.load_dataset(str(result.out_dir), split="train")
    assert "auto_masks" in ds.features
    plan = (tmp_path / "out" / ".work" / "1.2" / "lesion_mapped" / "plan.csv").read_text().splitlines()[0]
    assert "base_auto_mask" in plan and "donor_auto_mask" in plan

    # A changed masks setting reruns the mask step and every step after it (with --overwrite: the
    # version's content changes); before the step contract covered masks, the build refused.
    stricter = dataclasses.replace(cfg, masks=dataclasses.replace(cfg.masks, min_confidence=0.99))
    with pytest.raises(BuildError, match="--overwrite"):
        build(stricter, BuildOptions(out=tmp_path / "out", source=tmp_path / "src", workers=1))
    again = build(stricter, BuildOptions(out=tmp_path / "out", source=tmp_path / "src", workers=1, overwrite=True))
    assert again.decisions["masks"] == "rerun because masks.min_confidence changed"
    assert again.decisions["ingest"].startswith("rerun because")
    assert again.decisions["healthy"].startswith("rerun because")
    accepted = {sid for sid, e in read_auto_index(tmp_path / "out" / ".work" / "1.2" / "auto_masks").items()
                if e["accepted"]}
    assert accepted < passed  # a stricter gate keeps fewer photos, and the healthy stage follows it
    healthy = StageStore(tmp_path / "out" / ".work" / "1.2" / "healthy").records()
    assert {m.source_id for h in healthy for m in h.auto_masks} == accepted


def test_generate_masks_command_on_real_photos_with_masks_hidden(tmp_path, shared_data, capsys):
    from builder.cli import main

    fitz_source(shared_data, tmp_path / "src", 3)
    assert main(["-q", "generate", "masks", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                 "--min-confidence", "0"]) == 0
    assert "[masks] done=3" in capsys.readouterr().out
    assert len(list((tmp_path / "out").glob("*.npy"))) == 3 and (tmp_path / "out" / "sheets" / "batch-00000.png").is_file()
    assert main(["generate", "masks", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "x"),
                 "--backend", "learned"]) == 2  # no --model: a ConfigError naming masks.model_id
    assert "masks.model_id" in capsys.readouterr().err
