"""SAM 3 mask backend: preprocessing as Sam3ImageProcessor's, a tiny random-weight Sam3Model on real photos,
the gate and label maps of every automatic mask, selection by command and config, model pinning."""
from __future__ import annotations

import ast
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from builder.core.config import CONFIG_DIR, MasksConfig, load_config
from builder.core.errors import ConfigError
from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN
from curation.source.automasks import sam3
from curation.source.automasks.vet import VERSION as VET_VERSION
from curation.source.masks import read_auto_index, read_sddi_mask
from tests.curation.source.test_auto_masks import fitz_source

LEVEL = 2 / 255  # one 8-bit level after rescale (1/255) and normalisation (std 0.5)


@pytest.fixture(scope="module")
def tiny_sam3(tmp_path_factory) -> Path:
    from generation.tiny import save_tiny_sam3

    return save_tiny_sam3(tmp_path_factory.mktemp("models") / "tiny-sam3")


def _processor_class_defaults() -> dict:
    """Sam3ImageProcessor's class attributes, read from transformers' source (importing it needs torchvision)."""
    import transformers
    from transformers import image_utils

    src = Path(transformers.__file__).parent / "models" / "sam3" / "image_processing_sam3.py"
    cls = next(n for n in ast.parse(src.read_text()).body
               if isinstance(n, ast.ClassDef) and n.name == "Sam3ImageProcessor")
    attrs = {t.id: n.value for n in cls.body if isinstance(n, ast.Assign) for t in n.targets
             if isinstance(t, ast.Name)}
    value = lambda node: (getattr(image_utils, node.id) if isinstance(node, ast.Name)  # noqa: E731
                          else ast.literal_eval(node))
    return {"size": value(attrs["size"]), "image_mean": list(value(attrs["image_mean"])),
            "image_std": list(value(attrs["image_std"])), "resample": ast.unparse(attrs["resample"]),
            "do_pad": value(attrs["do_pad"]), "flags": [value(attrs[k]) for k in
                                                        ("do_resize", "do_rescale", "do_normalize")]}


def test_preprocessing_constants_are_the_image_processors():
    cls = _processor_class_defaults()
    d = sam3.PROCESSOR_DEFAULTS
    assert cls["size"] == d["size"] == {"height": 1008, "width": 1008}
    assert cls["image_mean"] == d["image_mean"] and cls["image_std"] == d["image_std"]
    assert cls["resample"] == "PILImageResampling.BILINEAR" and d["resample"] == sam3._BILINEAR
    assert cls["do_pad"] is None and cls["flags"] == [True, True, True]  # resize, rescale, normalise; no padding
    assert d["rescale_factor"] == 1 / 255


@pytest.mark.parametrize("side", [1008, 56])  # the real model's input (upsampling) and the tiny one's
def test_preprocessing_matches_transformers_resize_rescale_normalise(side):
    """Against transformers' own PIL image-processor steps configured as Sam3ImageProcessor, and against
    torch's 8-bit antialiased bilinear resize (torchvision's CPU path): at most one 8-bit level apart."""
    import torch
    import torch.nn.functional as F
    from transformers.image_processing_backends import PilBackend
    from transformers.image_utils import PILImageResampling

    cls = _processor_class_defaults()

    class Reference(PilBackend):
        resample = PILImageResampling.BILINEAR
        image_mean, image_std = cls["image_mean"], cls["image_std"]
        size = {"height": side, "width": side}
        do_resize = do_rescale = do_normalize = do_convert_rgb = True

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:301, :437]
    rgb = np.dstack([xx * 255 // 436, yy * 255 // 300, rng.integers(0, 256, (301, 437))]).astype(np.uint8)
    settings = sam3.processor_settings({**sam3.PROCESSOR_DEFAULTS, "size": {"height": side, "width": side}})
    ours = sam3.preprocess(rgb, **settings)
    assert ours.shape == (1, 3, side, side) and ours.dtype == torch.float32
    ours = ours[0].numpy()
    pil = Reference()(images=rgb, return_tensors="np")["pixel_values"][0]
    u8 = F.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None], size=(side, side), mode="bilinear",
                       align_corners=False, antialias=True)[0].float().numpy() / 255 * 2 - 1
    for ref in (pil, u8):
        diff = np.abs(ours - ref)
        assert diff.max() <= LEVEL + 1e-6 and diff.mean() < 0.1 * LEVEL
    assert ours.min() >= -1.0 and ours.max() <= 1.0


def test_processor_settings_come_from_the_model_folder_and_odd_ones_are_refused(tmp_path, tiny_sam3):
    raw = sam3.read_processor_config(str(tiny_sam3), None)
    assert sam3.processor_settings(raw) == {"size": (56, 56), "rescale": 1 / 255, "mean": (0.5,) * 3,
                                            "std": (0.5,) * 3}
    bare = Path(shutil.copytree(tiny_sam3, tmp_path / "bare"))
    (bare / sam3.PROCESSOR_FILE).unlink()  # no processor file: Sam3ImageProcessor's own defaults
    assert sam3.processor_settings(sam3.read_processor_config(str(bare), None))["size"] == (1008, 1008)
    for odd in ({"resample": 3}, {"do_normalize": False}, {"size": {"longest_edge": 1008}}):
        with pytest.raises(ConfigError, match="preprocessor_config.json asks for"):
            sam3.processor_settings({**raw, **odd})


def test_generate_masks_sam3_writes_a_mask_or_a_named_rejection_for_every_photo(tmp_path, shared_data, tiny_sam3):
    from builder.cli import main
    from builder.published.review.flags import mask_flags
    from curation.source.images import read_photo

    rows = fitz_source(shared_data, tmp_path / "src", 6)
    out = tmp_path / "auto"
    assert main(["-q", "generate", "masks", "--source", str(tmp_path / "src"), "--out", str(out),
                 "--backend", "sam3", "--model", str(tiny_sam3), "--min-confidence", "0.3",
                 "--batch-size", "3"]) == 0
    index = read_auto_index(out)
    assert len(index) == 6 and {(e["method"], e["version"]) for e in index.values()} == {("sam3-text", f"1+vet{VET_VERSION}")}
    accepted = [e for e in index.values() if e["accepted"]]
    rejected = [e for e in index.values() if not e["accepted"]]
    # the tiny model's random outlines: vetting (run on every backend's mask) scales most scores far down
    assert all(e["confidence"] <= e["backend_confidence"] for e in index.values())
    assert accepted and rejected  # the vetted scores straddle 0.3 on these photos
    assert all(e["reason"] == "mask_low_confidence" and e["confidence"] < 0.3 and "sam3-text" in e["detail"]
               for e in rejected)
    assert not any((out / f"{e['source_id'].split(':')[1]}.npy").exists() for e in rejected)
    by_id = {f"fitz17k:{r['md5hash']}": r for r in rows}
    for e in accepted:
        r = by_id[e["source_id"]]
        assert 0.3 <= e["confidence"] <= 1
        lm = read_sddi_mask(out / e["file"], int(r["height"]), int(r["width"]))
        assert set(np.unique(lm)) <= {LABEL_BACKGROUND, LABEL_LESION, LABEL_SKIN} and (lm == LABEL_LESION).any()
        photo = read_photo((tmp_path / "src" / r["image_file"]).read_bytes(), r["image_file"])
        assert {f.name for f in mask_flags(photo, lm)} == {  # the review flags of every automatic mask
            "mask_touches_frame", "mask_covers_frame", "mask_non_skin_colour", "mask_text_like"}
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["batch-00000.png", "batch-00001.png"]


def test_the_config_selects_sam3_and_its_prompt_is_part_of_the_step_key(tmp_path, shared_data, tiny_sam3):
    from curation.source.automasks.run import run_masks

    fitz_source(shared_data, tmp_path / "src", 2)
    raw = yaml.safe_load((CONFIG_DIR / "1.2.yaml").read_text())
    raw["masks"].update(backend="sam3", model_id=str(tiny_sam3), prompt="a mole", min_confidence=0.0)
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(str(tmp_path / "v.yaml")).masks
    assert (cfg.backend, cfg.prompt) == ("sam3", "a mole")
    summary = run_masks(tmp_path / "src", None, tmp_path / "a", cfg)
    assert summary.done + sum(summary.rejected.values()) == 2
    again = run_masks(tmp_path / "src", None, tmp_path / "b", cfg)  # deterministic
    assert (tmp_path / "a" / "auto_masks.jsonl").read_bytes() == (tmp_path / "b" / "auto_masks.jsonl").read_bytes()
    assert again.done == summary.done
    with pytest.raises(ConfigError, match="prompt changed"):
        run_masks(tmp_path / "src", None, tmp_path / "a", dataclasses.replace(cfg, prompt="skin lesion"))


def test_sam3_pinning_and_bad_settings_fail_before_any_model_loads(tmp_path, tiny_sam3):
    from curation.source.automasks.run import check_inputs

    with pytest.raises(ConfigError, match="masks.backend=sam3 needs masks.model_id"):
        check_inputs(MasksConfig(backend="sam3"))
    with pytest.raises(ConfigError,
                       match=r"'facebook/sam3' is a Hub id without a pinned revision: set masks\.revision"):
        check_inputs(MasksConfig(backend="sam3", model_id="facebook/sam3"))
    check_inputs(MasksConfig(backend="sam3", model_id="facebook/sam3", revision="0123abc"))  # pinned: accepted
    with pytest.raises(ConfigError, match="masks.prompt=' '"):
        check_inputs(MasksConfig(backend="sam3", model_id=str(tiny_sam3), prompt=" "))
    # a local folder is pinned by its content: changed weights change the step's key (the masks are redone)
    copy = Path(shutil.copytree(tiny_sam3, tmp_path / "copy"))
    cfg = MasksConfig(backend="sam3", model_id=str(copy))
    before = sam3.Sam3Backend.fingerprint(cfg)["model_content"]
    assert before.startswith("local-")
    meta = json.loads((copy / "preprocessor_config.json").read_text())
    (copy / "preprocessor_config.json").write_text(json.dumps({**meta, "image_std": [0.25] * 3}))
    assert sam3.Sam3Backend.fingerprint(cfg)["model_content"] != before
    assert sam3.Sam3Backend.fingerprint(MasksConfig(backend="sam3", model_id="facebook/sam3", revision="r")) == {}


def test_sam3_masks_carry_their_method_into_ingest(tmp_path, shared_data, tiny_sam3):
    from builder.core.store import StageStore
    from curation.source.automasks.run import run_masks
    from curation.source.ingest import ingest_source

    fitz_source(shared_data, tmp_path / "src", 2)
    run_masks(tmp_path / "src", None, tmp_path / "auto",
              MasksConfig(backend="sam3", model_id=str(tiny_sam3), min_confidence=0.0))
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, auto_masks=tmp_path / "auto", workers=1)
    recs = real.records()
    assert len(recs) == 2 and {m.method for r in recs for m in r.auto_masks} == {"sam3-text"}
