"""Healthy synthetics with the OpenCV backend on real data: pixel guarantee, label maps, records, shards, resume."""
from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.core.config import HealthyConfig, load_config
from builder.core.errors import ConfigError
from builder.core.schema import LABEL_LESION, LABEL_MARKER, LABEL_SKIN, Record
from builder.core.store import StageStore
from curation.source.masks import MaskError, read_binary_masks, read_sddi_mask
from generation.healthy.stage import run_healthy
from generation.healthy.region import composite, crop_window, inpaint_region
from tests.healthy_fixtures import _put_real, fitz17k_real_store, sddi_real_store

CFG = HealthyConfig()  # opencv, the default backend


@pytest.fixture(scope="module")
def fitz(shared_data, tmp_path_factory):
    """All 39 Fitzpatrick17k photos with hand-drawn masks, healed once for the module."""
    root = tmp_path_factory.mktemp("fitz")
    real = StageStore(root / "real")
    fitz17k_real_store(shared_data, real)
    out = StageStore(root / "healthy")
    summary = run_healthy(real, out, CFG, shard_size=8)
    return real, out, summary


def _files(store: StageStore) -> dict[str, bytes]:
    return {p.relative_to(store.root).as_posix(): p.read_bytes()
            for p in sorted(store.root.rglob("*")) if p.is_file()}


def assert_guarantee(real: StageStore, out: StageStore, cfg: HealthyConfig) -> int:
    """Outside the inpaint region every pixel equals the input; returns how many images changed inside."""
    changed = 0
    for rec in out.records():
        src, dst = real.read_image(rec.parent_id), out.read_image(rec.sample_id)
        region = inpaint_region(real.read_mask(rec.parent_id), include_marker=cfg.include_marker,
                                dilate_px=cfg.dilate_px, feather_px=cfg.feather_px)
        assert src.shape == dst.shape, rec.sample_id
        assert np.array_equal(src[~region.mask], dst[~region.mask]), rec.sample_id
        changed += int(not np.array_equal(src[region.mask], dst[region.mask]))
    return changed


def test_fitz17k_every_photo_healed_outside_pixels_identical(fitz):
    real, out, summary = fitz
    assert summary.done == 39 and not summary.rejected
    assert len(out.records()) == 39
    assert assert_guarantee(real, out, CFG) == 39  # and the lesion really was painted over


def test_fitz17k_new_label_map_region_becomes_skin(fitz):
    real, out, _ = fitz
    for rec in out.records():
        old, new = real.read_mask(rec.parent_id), out.read_mask(rec.sample_id)
        region = inpaint_region(old, include_marker=True, dilate_px=CFG.dilate_px, feather_px=0)
        assert (new[region.mask] == LABEL_SKIN).all()
        assert np.array_equal(new[~region.mask], old[~region.mask])
        assert not (new == LABEL_LESION).any()


def test_fitz17k_records_carry_lineage(fitz):
    real, out, _ = fitz
    by_id = {r.sample_id: r for r in real.records()}
    for rec in out.records():
        src = by_id[rec.parent_id]
        assert (rec.kind, rec.disease, rec.disease_raw, rec.malignant) == ("healthy", "healthy", None, False)
        assert rec.source_ids == src.source_ids and rec.skin_tone == src.skin_tone
        assert rec.fitzpatrick == src.fitzpatrick and rec.base_id is None and rec.donor_id is None
        assert rec.prompt is None and isinstance(rec.seed, int)  # opencv: no prompt; seeded grain
        assert rec.generator.backend == "opencv"
        assert rec.params["dilate_px"] == 3 and rec.params["method"] == "telea"
        assert rec.params["grain"] == 1.0
        assert rec.sample_id.startswith("healthy-")


def test_fitz17k_binary_masks_read_for_every_photo(shared_data):
    folder = shared_data / "fitz17k_lesions"
    stems = sorted(p.name[:-len("_lesions.png")] for p in (folder / "masks").glob("*_lesions.png"))
    assert len(stems) >= 39
    for stem in stems[:39]:
        img = next((folder / "images").glob(f"{stem}.*"))
        with Image.open(img) as im:
            w, h = im.size
        lm = read_binary_masks(folder / "masks" / f"{stem}_lesions.png",
                               folder / "masks" / f"{stem}_nonskin.png", h, w)
        assert lm.shape == (h, w) and lm.dtype == np.uint8
        assert set(np.unique(lm)) <= {0, 1, 4} and (lm == LABEL_LESION).any()


def test_sddi_masks_resized_nearest_keep_labels(shared_data):
    for stem in ("000001", "000006", "000221"):
        raw = np.load(shared_data / "sddi_masks" / f"{stem}.npy")
        lm = read_sddi_mask(shared_data / "sddi_masks" / f"{stem}.npy", 480, 640)
        assert lm.shape == (480, 640)
        assert set(np.unique(lm)) <= set(np.unique(raw).tolist())  # nearest: no blended labels


def test_mask_readers_name_the_bad_file(tmp_path):
    bad_values = tmp_path / "bad.npy"
    np.save(bad_values, np.full((8, 8), 7, np.int32))
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(b"not numpy")
    empty = tmp_path / "empty.npy"
    np.save(empty, np.full((8, 8), LABEL_SKIN, np.int32))
    for path, reason in ((bad_values, "unknown_label_values"), (corrupt, "unreadable_mask"),
                         (empty, "empty_lesion")):
        with pytest.raises(MaskError) as e:
            read_sddi_mask(path, 16, 16)
        assert e.value.reason == reason and str(path) in e.value.detail


@pytest.fixture()
def sddi(shared_data, tmp_path):
    """sDDI masks with and without marker ink, over synthetic photos."""
    real = StageStore(tmp_path / "real")
    sddi_real_store(shared_data, real, ["000001", "000006", "000007", "000009", "000010"])
    return real, tmp_path


def _marker_stems(shared_data: Path, n: int) -> list[str]:
    import csv

    rows = csv.DictReader((shared_data / "sddi_masks" / "manifest.csv").open())
    return [r["file"][:-4] for r in rows if r["has_marker"] == "1"][:n]


def test_sddi_marker_ink_inpainted_only_when_asked(shared_data, tmp_path):
    real = StageStore(tmp_path / "real")
    sddi_real_store(shared_data, real, _marker_stems(shared_data, 3))
    for include in (True, False):
        cfg = dataclasses.replace(CFG, include_marker=include)
        out = StageStore(tmp_path / f"healthy-{include}")
        assert run_healthy(real, out, cfg).done == 3
        assert assert_guarantee(real, out, cfg) == 3
        for rec in out.records():
            has_marker = (out.read_mask(rec.sample_id) == LABEL_MARKER).any()
            assert has_marker == (not include)


def test_smooth_fill_has_no_seed_and_grain_adds_skin_detail(sddi):
    real, tmp = sddi
    smooth, grainy = StageStore(tmp / "smooth"), StageStore(tmp / "grainy")
    run_healthy(real, smooth, dataclasses.replace(CFG, opencv_grain=0.0))
    run_healthy(real, grainy, CFG)
    by_real = {r.parent_id: r for r in smooth.records()}
    for rec in grainy.records():
        flat = by_real[rec.parent_id]
        assert flat.seed is None and flat.sample_id != rec.sample_id  # different settings, different id
        region = inpaint_region(real.read_mask(rec.parent_id), include_marker=True, dilate_px=3,
                                feather_px=2)
        inner = region.alpha == 1
        spread = [float(np.std(np.diff(s.read_image(r.sample_id)[inner].astype(float), axis=0)))
                  for s, r in ((smooth, flat), (grainy, rec))]
        assert spread[1] > spread[0]  # the noisy synthetic photos' grain carries into the fill
    assert assert_guarantee(real, grainy, CFG) == 5


def test_same_union_for_any_world_size(sddi):
    real, tmp = sddi
    one = StageStore(tmp / "one")
    run_healthy(real, one, CFG, shard_size=2)
    three = StageStore(tmp / "three")
    dones = [run_healthy(real, three, CFG, shard_size=2, rank=r, world_size=3).done for r in range(3)]
    assert dones == [2, 2, 1]  # shards 0,3 / 1 / 2 of sizes 2,2,1
    assert _files(one) == _files(three)


def test_resume_redoes_only_unfinished_shards_same_bytes(sddi):
    real, tmp = sddi
    full = StageStore(tmp / "full")
    run_healthy(real, full, CFG, shard_size=2)
    part = StageStore(tmp / "part")
    run_healthy(real, part, CFG, shard_size=2)
    # A kill -9 mid-shard leaves some images written but no records file (the completion marker).
    marker = part.root / "records" / "shard-00001.jsonl"
    victim = Record.from_json(json.loads(marker.read_text().splitlines()[0]))
    marker.unlink()
    part.image_path(victim.sample_id).write_bytes(b"half-written")
    summary = run_healthy(real, part, CFG, shard_size=2)
    assert (summary.done, summary.skipped) == (2, 3)
    assert _files(part) == _files(full)


def test_a_finished_shard_whose_image_was_changed_is_redone(sddi, caplog):
    """The work folder is trusted only as far as it is checked: an image that differs from its marker's
    record is named, and its shard (only) redone."""
    real, tmp = sddi
    full = StageStore(tmp / "full")
    run_healthy(real, full, CFG, shard_size=2)
    part = StageStore(tmp / "part")
    run_healthy(real, part, CFG, shard_size=2)
    finished = part.image_path(part.records()[0].sample_id)
    finished.write_bytes(b"sentinel: edited after its shard finished")
    with caplog.at_level("WARNING"):
        summary = run_healthy(real, part, CFG, shard_size=2)
    assert (summary.done, summary.skipped) == (2, 3)
    assert f"images/{finished.name} is missing or changed size" in caplog.text
    assert _files(part) == _files(full)


def test_resume_with_other_settings_refused(sddi):
    real, tmp = sddi
    out = StageStore(tmp / "out")
    run_healthy(real, out, CFG, shard_size=2)
    with pytest.raises(ConfigError, match="shard_size"):
        run_healthy(real, out, CFG, shard_size=3)
    with pytest.raises(ConfigError, match="config"):
        run_healthy(real, out, dataclasses.replace(CFG, dilate_px=5), shard_size=2)


def test_unusable_records_become_rejections_and_the_run_goes_on(sddi):
    real, tmp = sddi
    rgb = np.full((40, 50, 3), 180, np.uint8)
    no_lesion = np.full((40, 50), LABEL_SKIN, np.uint8)
    recs = [_put_real(real, rgb, no_lesion, "ddi:900001", 3, "melanoma", True)]
    lesion = no_lesion.copy()
    lesion[10:20, 10:20] = LABEL_LESION
    missing_mask = _put_real(real, rgb + 1, lesion, "ddi:900002", 3, "melanoma", True)
    real.mask_path(missing_mask.sample_id).unlink()
    corrupt = _put_real(real, rgb + 2, lesion, "ddi:900003", 3, "melanoma", True)
    real.image_path(corrupt.sample_id).write_bytes(b"\x89PNG but truncated")
    unknown = _put_real(real, rgb + 3, lesion, "ddi:900004", 3, "melanoma", True)
    buf = io.BytesIO()
    Image.fromarray(np.where(lesion == 1, 9, lesion).astype(np.uint8)).save(buf, format="PNG")
    real.mask_path(unknown.sample_id).write_bytes(buf.getvalue())
    wrong_size = _put_real(real, rgb + 4, lesion, "ddi:900005", 3, "melanoma", True)
    real.put_mask(wrong_size.sample_id, lesion[:30])
    real.finish_shard("bad", recs + [missing_mask, corrupt, unknown, wrong_size], [])
    out = StageStore(tmp / "out")
    summary = run_healthy(real, out, CFG)
    assert summary.done == 5
    assert dict(summary.rejected) == {"empty_region": 1, "missing_mask": 1, "unreadable_image": 1,
                                      "unknown_label_values": 1, "mask_size_mismatch": 1}
    rej = out.rejections()
    assert all(r.stage == "healthy" and r.path and Path(r.path).name in r.detail for r in rej)
    assert len(out.records()) + len(rej) == len(real.records())


def test_failing_shard_is_retried_then_reported_with_the_fix(sddi):
    from builder.core.errors import BuildError

    real, tmp = sddi
    out = StageStore(tmp / "out")
    out.root.mkdir()
    (out.root / "images").write_text("a file where the images folder should be")
    with pytest.raises(BuildError, match="failed 2 times.*rerun the same command to resume"):
        run_healthy(real, out, CFG, shard_size=2)
    assert not (out.root / "records").exists()


def test_bad_configuration_fails_before_any_work(sddi):
    real, tmp = sddi
    out = StageStore(tmp / "never")
    bad = [dict(backend="gan"), dict(backend="diffusers"), dict(prompt="skin of a {tone} {who}"),
           dict(crop_size=100), dict(dtype="fp8"), dict(dilate_px=-1)]
    for change in bad:
        with pytest.raises(ConfigError):
            run_healthy(real, out, dataclasses.replace(CFG, **change))
    with pytest.raises(ConfigError, match="rank"):
        run_healthy(real, out, CFG, rank=2, world_size=2)
    assert not out.root.exists()


def test_region_dilates_into_skin_only_and_feathers_inside():
    lm = np.full((40, 40), LABEL_SKIN, np.uint8)
    lm[:, :15] = 0  # background on the left
    lm[15:25, 14:24] = LABEL_LESION  # lesion touching the background
    region = inpaint_region(lm, include_marker=True, dilate_px=3, feather_px=2)
    assert not region.mask[:, :14].any()  # never grows into background
    assert region.mask[14, 18] and region.mask[18, 26]  # grows into skin
    assert (region.alpha[~region.mask] == 0).all() and (region.alpha[lm == LABEL_LESION] == 1).all()
    rng = np.random.default_rng(0)
    src, gen = (rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(2))
    out = composite(src, gen, region)
    assert np.array_equal(out[~region.mask], src[~region.mask])
    assert np.array_equal(out[lm == LABEL_LESION], gen[lm == LABEL_LESION])
    assert inpaint_region(np.full((5, 5), LABEL_SKIN, np.uint8), include_marker=True,
                          dilate_px=3, feather_px=2) is None


def test_crop_window_contains_region_and_stays_inside_image():
    for box, (h, w) in [((10, 10, 20, 20), (1000, 800)), ((0, 0, 700, 30), (900, 720)),
                        ((790, 990, 800, 1000), (1000, 800)), ((5, 5, 50, 60), (64, 100))]:
        x0, y0, x1, y1 = crop_window(box, h, w, 512)
        assert 0 <= x0 <= box[0] and 0 <= y0 <= box[1] and box[2] <= x1 <= w and box[3] <= y1 <= h
        assert x1 - x0 == min(w, max(512, box[2] - box[0], box[3] - box[1]))


def test_config_1_1_has_the_healthy_fields():
    cfg = load_config("1.1").healthy
    assert (cfg.backend, cfg.stand_in, cfg.crop_size, cfg.dtype, cfg.dilate_px) == ("kandinsky22", "opencv", 512, "auto", 3)
    assert "{tone}" in cfg.prompt
