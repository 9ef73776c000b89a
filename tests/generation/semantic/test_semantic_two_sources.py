"""Semantic sampling across two sources on the tiny pipeline (real models, no stubs): Fitzpatrick17k melanoma
photos and DDI-layout melanocytic-nevi stand-ins (real sDDI masks) train one disease each; image-to-image
starts from the healthy synthetics of both sources' photos, and `semantic.cross_source` decides which
disease meets which source's healthy image. Lineage names both sources, and the leakage rule follows it."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from builder.core.config import load_config
from builder.core.directions import source_of
from builder.core.schema import Record, fitzpatrick_to_tone
from builder.core.store import StageStore, encode_png
from curation.leakage import apply_splits
from tests.downstream_fixtures import stand_in_photo
from tests.generation.semantic.test_semantic import TINY

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),  # tests/conftest.py
              pytest.mark.slow]  # trains textual inversion and LoRA per source (over a minute)

DISEASE_SOURCE = {"melanoma": "fitz17k", "melanocytic-nevi": "ddi"}


def _fitz(shared_data, real: StageStore) -> list[Record]:
    from PIL import Image

    from curation.source.masks import read_binary_masks

    src = shared_data / "fitz17k_lesions"
    rows = sorted((r for r in csv.DictReader((src / "metadata.csv").open()) if r["label"] == "melanoma"),
                  key=lambda r: r["md5hash"])[:3]
    recs = []
    for r in rows:
        with Image.open(src / r["image_file"]) as im:
            im = im.convert("RGB")
            im.thumbnail((64, 64))
            rgb = np.asarray(im)
        sid, fitz = f"real-{r['md5hash'][:12]}", int(r["fitzpatrick_scale"])
        real.put_mask(sid, read_binary_masks(src / r["mask_lesions"], src / r["mask_nonskin"], *rgb.shape[:2]))
        recs.append(Record(sid, "real", fitzpatrick_to_tone(fitz), True, "melanoma", [f"fitz17k:{r['md5hash']}"],
                           image_path=real.put_image(sid, encode_png(rgb)), fitzpatrick=fitz))
    return recs


def _ddi(shared_data, real: StageStore) -> list[Record]:
    """Stand-in photos drawn on the real sDDI masks of DDI's first three melanocytic-nevi rows (64 px)."""
    from PIL import Image

    from builder.core.schema import DDI_TONE_TO_NAME

    masks = shared_data / "sddi_masks"
    rows = [r for r in csv.DictReader((shared_data / "ddi_metadata.csv").open())
            if r["disease"] == "melanocytic-nevi" and (masks / f"{Path(r['DDI_file']).stem}.npy").is_file()][:3]
    recs = []
    for i, r in enumerate(rows):
        stem = Path(r["DDI_file"]).stem
        photo = Image.fromarray(stand_in_photo(np.load(masks / f"{stem}.npy"), int(r["skin_tone"]), i))
        photo.thumbnail((64, 64))
        rgb = np.asarray(photo)
        mask = np.asarray(Image.fromarray(np.load(masks / f"{stem}.npy").astype(np.uint8)).resize(
            photo.size, Image.Resampling.NEAREST))
        sid = f"real-ddi-{stem}"
        real.put_mask(sid, mask)
        recs.append(Record(sid, "real", DDI_TONE_TO_NAME[int(r["skin_tone"])], False, "melanocytic-nevi",
                           [f"ddi:{stem}"], image_path=real.put_image(sid, encode_png(rgb))))
    return recs


@pytest.fixture(scope="module")
def two(tmp_path_factory, shared_data):
    """Real store of both sources (the last photo of each is test), healthy synthetics of every photo, and
    the tiny img2img config over both diseases."""
    from builder.core.config import HealthyConfig
    from generation.healthy.stage import run_healthy
    from generation.tiny import save_tiny

    root = tmp_path_factory.mktemp("semantic-two")
    real, healthy = StageStore(root / "real"), StageStore(root / "healthy")
    fitz, ddi = _fitz(shared_data, real), _ddi(shared_data, real)
    real.finish_shard("ingest", fitz + ddi, [])
    splits = {r.source_ids[0]: "train" for r in fitz + ddi}
    splits.update({fitz[-1].source_ids[0]: "test", ddi[-1].source_ids[0]: "test"})
    assert run_healthy(real, healthy, HealthyConfig(backend="opencv")).done == 6
    raw = yaml.safe_load((Path(__file__).parents[3] / "builder/configs/1.1.yaml").read_text())
    raw["semantic"].update(TINY, model_id=str(save_tiny("text2img", root / "tiny")), revision=None,
                           sampling="img2img", strength=0.725, diseases=sorted(DISEASE_SOURCE), budget=18)
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    return {"real": real, "healthy": healthy, "splits": splits, "work": root / "work", "root": root,
            "cfg": load_config(str(root / "tiny.yaml")).semantic}


def _run(two, cross: str, name: str) -> list[Record]:
    from generation.semantic.build import run_semantic

    out = StageStore(two["root"] / name)
    run_semantic(two["real"], two["splits"], out, dataclasses.replace(two["cfg"], cross_source=cross),
                 device="cpu", work_dir=two["work"], healthy=two["healthy"])
    return out.records()


def test_across_pairs_each_disease_with_the_other_sources_healthy_images(two):
    rows = _run(two, "across", "across")
    prompt = {r.sample_id: r for r in two["healthy"].records()}
    ways = set()
    for r in rows:
        start = prompt[r.parent_id].source_ids[0]
        ways.add((DISEASE_SOURCE[r.disease], source_of(start)))
        assert start in r.source_ids  # the healthy image's photo is in the row's lineage
        instances = {s for s, sp in two["splits"].items()
                     if sp == "train" and source_of(s) == DISEASE_SOURCE[r.disease]}
        assert instances <= set(r.source_ids), r.source_ids  # the disease's own source's train photos
        # the rest are the LoRA's class images (healthy synthetics of train photos, either source): train only
        assert all(two["splits"][s] == "train" for s in r.source_ids if s != start), r.source_ids
    assert ways == {("fitz17k", "ddi"), ("ddi", "fitz17k")}  # both ways, never within one source
    kept, _, rejected = apply_splits(rows, two["splits"])
    assert not rejected
    for r in kept:  # the leakage rule follows lineage across sources: a test photo of either makes it test
        assert r.split == ("test" if any(two["splits"][s] == "test" for s in r.source_ids) else "train")
    assert {(source_of(prompt[r.parent_id].source_ids[0]), r.split) for r in kept} == \
        {(s, sp) for s in ("ddi", "fitz17k") for sp in ("train", "test")}


def test_a_direction_keeps_only_its_diseases_and_prompts(two):
    rows = _run(two, "ddi->fitz17k", "ddi-to-fitz")
    prompt = {r.sample_id: r for r in two["healthy"].records()}
    assert rows and {r.disease for r in rows} == {"melanocytic-nevi"}
    assert {source_of(prompt[r.parent_id].source_ids[0]) for r in rows} == {"fitz17k"}
