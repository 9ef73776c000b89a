"""Lesion mapping on the real sDDI masks and Fitzpatrick17k photos: placement rule, plans, lineage, CLI."""
from __future__ import annotations

import collections
import io

import cv2
import numpy as np
import polars as pl
import pytest
from PIL import Image

from builder.core.config import LesionMapConfig, load_config
from builder.core.errors import ConfigError
from builder.core.schema import (DDI_TONE_TO_NAME, LABEL_LESION, LABEL_SKIN, Record, digest, fitzpatrick_to_tone,
                            make_sample_id)
from builder.core.store import StageStore, encode_png
from curation.source.masks import read_binary_masks, read_sddi_mask
from builder.cli import main as cli_main
from generation.lesion_map.stage import make_plan, run_lesion_map, run_lesion_map_pool
from generation.lesion_map.placement import (PlacementError, allowed_region, choose_offset, cut_patch, feather_kernel,
                                  fit_donor, map_lesion, naive_valid_offsets, valid_offsets, with_margin)

SKIN_RGB = {"light": (224, 182, 160), "medium": (178, 126, 94), "dark": (96, 64, 48)}
CFG = LesionMapConfig(budget=24, seed=3, pads=(10, 5, 0), rotate=True, dilate_px=1, feather=1.5)
# A spread of real sDDI masks: all tones, common and one-off diseases, markers and rulers.
BASE_STEMS = ["000001", "000006", "000007", "000009", "000012", "000020", "000100", "000150",
              "000221", "000300", "000400", "000500", "000600"]


def skin_distance(label_map: np.ndarray) -> np.ndarray:
    """Independent check of the margin: chessboard distance to the nearest non-skin pixel or the border."""
    framed = cv2.copyMakeBorder(np.isin(label_map, (1, 2, 4)).astype(np.uint8), 1, 1, 1, 1,
                                cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(framed, cv2.DIST_C, 3)[1:-1, 1:-1]


def synth_photo(label_map: np.ndarray, tone: str, seed: int) -> np.ndarray:
    """A DDI-like photo for a real label map: noisy skin of the tone, darker lesion, ink, ruler."""
    rng = np.random.default_rng(seed)
    img = np.zeros(label_map.shape + (3,), np.float32) + (60, 70, 80)
    img[label_map == LABEL_SKIN] = SKIN_RGB[tone]
    img[label_map == LABEL_LESION] = np.array(SKIN_RGB[tone]) * 0.5
    img[label_map == 2] = (90, 40, 120)
    img[label_map == 3] = (235, 235, 235)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _ddi_rows(shared_data) -> dict[str, dict]:
    meta = pl.read_csv(shared_data / "sddi_masks" / "manifest.csv", infer_schema_length=0)
    return {r["file"][:-4]: r for r in meta.iter_rows(named=True)}


def _stem_sample(stems, shared_data, n):
    have = sorted(p.stem for p in (shared_data / "sddi_masks").glob("*.npy"))
    return [s for s in have if s in stems] + have[::max(1, len(have) // n)][:n]


def _real_record(source_id: str, png: bytes, tone: str, disease: str, malignant: bool, fitz=None) -> Record:
    sid = make_sample_id("real", digest(png), {"source_id": source_id})
    return Record(sid, "real", tone, malignant, disease, [source_id], image_path=f"images/{sid}.png",
                  fitzpatrick=fitz, disease_raw=disease)


def build_stores(root, shared_data) -> tuple[StageStore, StageStore]:
    """Bases: healthy versions (lesion -> skin) of real sDDI masks; donors: sDDI masks + fitz17k photos."""
    rows = _ddi_rows(shared_data)
    bases, donors = StageStore(root / "healthy"), StageStore(root / "real")
    base_recs, donor_recs = [], []
    for i, stem in enumerate(_stem_sample(BASE_STEMS, shared_data, 12)):
        r = rows[stem]
        tone = DDI_TONE_TO_NAME[int(r["ddi_skin_tone"])]
        lm = np.load(shared_data / "sddi_masks" / f"{stem}.npy").astype(np.uint8)
        rgb = synth_photo(lm, tone, i)
        malignant = r["ddi_malignant"].upper() == "TRUE"
        if i % 2 == 0 and (lm == LABEL_LESION).any():
            rec = _real_record(f"ddi:{stem}", encode_png(rgb), tone, r["ddi_disease"], malignant)
            donors.put_image(rec.sample_id, encode_png(rgb))
            donors.put_mask(rec.sample_id, lm)
            donor_recs.append(rec)
        healthy = np.where(lm == LABEL_LESION, LABEL_SKIN, lm).astype(np.uint8)
        hrgb = synth_photo(healthy, tone, 100 + i)
        png = encode_png(hrgb)
        sid = make_sample_id("healthy", digest(png), {"base": stem})
        base_recs.append(Record(sid, "healthy", tone, False, "healthy", [f"ddi:{stem}"], f"images/{sid}.png"))
        bases.put_image(sid, png)
        bases.put_mask(sid, healthy)
    donor_recs += _fitz_donors(donors, shared_data)
    bases.finish_shard("healthy-00000", base_recs, [])
    donors.finish_shard("real-00000", donor_recs, [])
    return bases, donors


def _fitz_donors(donors: StageStore, shared_data) -> list[Record]:
    """Real photos of other sizes than the bases (the resize path), with one selected lesion each."""
    folder = shared_data / "fitz17k_lesions"
    meta = pl.read_csv(folder / "metadata.csv").filter((pl.col("width") < 480) &
                                                        (pl.col("selected_lesion_frac") < 0.05)).sort("md5hash")
    out = []
    for r in meta.head(4).iter_rows(named=True):
        with Image.open(folder / r["image_file"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        lm = read_binary_masks(folder / r["mask_selected_lesion"], folder / r["mask_nonskin"], *rgb.shape[:2])
        png = encode_png(rgb)
        rec = _real_record(f"fitz17k:{r['md5hash']}", png, fitzpatrick_to_tone(r["fitzpatrick_scale"]),
                           r["label"], r["three_partition_label"] == "malignant", r["fitzpatrick_scale"])
        donors.put_image(rec.sample_id, png)
        donors.put_mask(rec.sample_id, lm)
        out.append(rec)
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory, shared_data):
    return build_stores(tmp_path_factory.mktemp("lesion_map_inputs"), shared_data)


@pytest.fixture(scope="module")
def mapped(stores, tmp_path_factory):
    out = StageStore(tmp_path_factory.mktemp("lesion_map_out") / "out")
    summary = run_lesion_map(*stores, out, CFG, shard_size=10)
    return out, summary


# -- placement: exact rule, vectorized ------------------------------------------------------------
def test_fast_placement_equals_naive_loop_on_real_masks(shared_data):
    stems = sorted(p.stem for p in (shared_data / "sddi_masks").glob("*.npy"))
    for k, (b, d) in enumerate([(stems[3], stems[40]), (stems[77], stems[150]), (stems[200], stems[5])]):
        base = np.load(shared_data / "sddi_masks" / f"{b}.npy").astype(np.uint8)
        donor = read_sddi_mask(shared_data / "sddi_masks" / f"{d}.npy", 256, 256)
        patch = cut_patch(synth_photo(donor, "dark", k), donor, 37.0 * k, 1, 1.5)
        allowed = allowed_region(base)
        for pad in (10, 5, 0):
            slow = naive_valid_offsets(base, patch.support, pad)
            for method in ("auto", "bits", "fft"):
                fast = valid_offsets(with_margin(allowed, pad), patch.support, method)
                assert fast.shape == slow.shape and (fast == slow).all(), (b, d, pad, method)
            assert slow.any() or pad > 0


def test_fast_placement_equals_naive_loop_on_random_shapes():
    """Odd and prime sizes (FFT padding), skin touching borders or not, holes, multi-part lesions."""
    rng = np.random.default_rng(7)
    counts = []
    for k in range(12):
        hh, ww = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        noise = cv2.GaussianBlur(rng.random((hh, ww)).astype(np.float32), (0, 0), 6)
        base = np.where(noise > np.quantile(noise, 0.15), LABEL_SKIN, 0).astype(np.uint8)
        base[rng.random((hh, ww)) < 0.002] = 3  # isolated ruler pixels: holes the shape must avoid
        dh, dw = int(rng.integers(8, 20)), int(rng.integers(8, 20))
        donor = np.where(rng.random((dh, dw)) < 0.15, LABEL_LESION, LABEL_SKIN).astype(np.uint8)
        patch = cut_patch(synth_photo(donor, "medium", k), donor, float(rng.uniform(0, 360)), 0, 0.5 * (k % 3))
        for pad in (3, 1, 0):
            slow = naive_valid_offsets(base, patch.support, pad)
            for method in ("auto", "bits", "fft"):
                fast = valid_offsets(with_margin(allowed_region(base), pad), patch.support, method)
                assert np.array_equal(fast, slow), (k, pad, method)
            counts.append(int(slow.sum()))
    assert sum(c > 0 for c in counts) >= 18  # most cases have valid offsets to agree on


def _blobs(rng: np.random.Generator, shape: tuple[int, int], keep: float, sigma: float) -> np.ndarray:
    noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), sigma)
    return noise > np.quantile(noise, 1 - keep)


@pytest.mark.parametrize("hw, fp_hw", [((40, 31), (9, 30)), ((50, 32), (12, 32)), ((45, 33), (20, 33)),
                                        ((70, 63), (30, 40)), ((66, 64), (33, 64)), ((80, 65), (7, 65)),
                                        ((60, 97), (25, 70)), ((130, 129), (64, 66)), ((35, 200), (6, 100))])
def test_bit_search_equals_naive_loop_across_word_boundaries(hw, fp_hw):
    """Bit-packed rows hold 64 columns every 32: widths and footprint shifts around 32 and 64,
    footprints as wide as the base, multi-part footprints with holes, ruler specks in the skin."""
    rng = np.random.default_rng(sum(hw) * 1000 + sum(fp_hw))
    agree = 0
    for trial in range(3):
        base = np.where(_blobs(rng, hw, 0.97, max(hw) / 6), LABEL_SKIN, 0).astype(np.uint8)
        base[rng.random(hw) < 0.001] = 3
        support = _blobs(rng, fp_hw, 0.1 + 0.1 * trial, 1.5 + trial)
        support[fp_hw[0] // 2, fp_hw[1] // 2] = True
        for pad in (2, 0):
            slow, inside = naive_valid_offsets(base, support, pad), with_margin(allowed_region(base), pad)
            for method in ("bits", "fft"):
                assert np.array_equal(valid_offsets(inside, support, method), slow), (trial, pad, method)
            agree += int(slow.sum())
    assert agree > 0


def test_auto_search_picks_bits_for_compact_footprints_and_fft_for_fragmented_ones():
    from generation.fit import _bits_cost, _column_runs, _fft_cost

    rng = np.random.default_rng(5)
    disk = cv2.circle(np.zeros((41, 41), np.uint8), (20, 20), 20, 1, -1).astype(bool)
    specks = rng.random((120, 120)) < 0.3
    for footprint, expect_bits in ((disk, True), (specks, False)):
        bits_cost = _bits_cost((236, 236), footprint.shape[0], _column_runs(footprint))
        assert (bits_cost < _fft_cost((236, 236))) == expect_bits
    base = np.where(_blobs(rng, (200, 200), 0.95, 8), LABEL_SKIN, 0).astype(np.uint8)
    inside = allowed_region(base)
    for footprint in (disk, specks, np.zeros((3, 4), bool)):  # an empty footprint fits anywhere in the crop
        assert np.array_equal(valid_offsets(inside, footprint), valid_offsets(inside, footprint, "fft"))
    with pytest.raises(ValueError, match="'bits' or 'fft'"):
        valid_offsets(inside, disk, "loop")


def test_choose_offset_draws_the_kth_valid_offset_in_row_major_order():
    rng = np.random.default_rng(3)
    for k in range(40):
        valid = rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) < rng.choice([0.0, 0.02, 0.5, 1.0])
        idx = np.flatnonzero(valid)
        want = divmod(int(idx[np.random.default_rng(k).integers(idx.size)]), valid.shape[1]) if idx.size else None
        assert choose_offset(valid, np.random.default_rng(k)) == want, k


def test_every_changed_pixel_is_in_the_feathered_lesion_inside_skin_with_its_pad(mapped, stores):
    out, summary = mapped
    bases, donors = stores
    recs = out.records()
    assert len(recs) >= 15 and summary.done == len(recs)
    for rec in recs:
        p = rec.params
        base_rgb, base_map = bases.read_image(rec.base_id), bases.read_mask(rec.base_id)
        drgb, dmap, _ = fit_donor(donors.read_image(rec.donor_id), donors.read_mask(rec.donor_id), base_map.shape,
                                  p["donor_resize"])
        patch = cut_patch(drgb, dmap, p["angle"], p["dilate"], p["feather"], p["lesion_scale"])
        (y, x), (h, w) = p["offset"], patch.support.shape
        assert [h, w] == p["patch_hw"]
        placed = np.zeros(base_map.shape, bool)
        placed[y:y + h, x:x + w] = patch.support[:base_map.shape[0] - y, :base_map.shape[1] - x]
        changed = (out.read_image(rec.sample_id) != base_rgb).any(axis=-1)
        assert changed.any() and not (changed & ~placed).any(), rec.sample_id
        if rec.placement == "kept_in_place":  # the method's last resort: no position fits at any pad
            assert p["pad"] is None and all(not naive_valid_offsets(base_map, patch.support, q).any() for q in CFG.pads)
            continue
        assert rec.placement == "fit" and p["lesion_scale"] == 1.0
        dist = skin_distance(base_map)
        assert (dist[placed] > p["pad"]).all()  # inside skin|lesion|marker with margin pad
        for earlier in CFG.pads[:CFG.pads.index(p["pad"])]:  # the recorded pad is the first that fits
            assert not naive_valid_offsets(base_map, patch.support, earlier).any()
        new_map = out.read_mask(rec.sample_id)
        lesion = np.zeros_like(placed)
        lesion[y:y + h, x:x + w] = patch.lesion[:base_map.shape[0] - y, :base_map.shape[1] - x]
        assert ((new_map == LABEL_LESION) == lesion).all()
        assert (new_map[~lesion] == base_map[~lesion]).all()


def test_donor_of_another_size_is_brought_to_the_base_scale(mapped, stores):
    out, _ = mapped
    fitz = [r for r in out.records() if any(s.startswith("fitz17k:") for s in r.source_ids)]
    assert fitz, "the plan should map the fitz17k donors too"
    for rec in fitz:
        assert out.read_image(rec.sample_id).shape == stores[0].read_image(rec.base_id).shape


def test_angle_zero_copies_donor_pixels_exactly(shared_data):
    lm = np.load(shared_data / "sddi_masks" / "000006.npy").astype(np.uint8)
    rgb = synth_photo(lm, "light", 0)
    patch = cut_patch(rgb, lm, 0.0, 0, 0.0)
    ys, xs = np.nonzero(lm == LABEL_LESION)
    np.testing.assert_array_equal(patch.rgb[patch.lesion], rgb[lm == LABEL_LESION][np.lexsort((xs, ys))])


def test_feather_is_exact_dyadic_so_bytes_do_not_depend_on_the_machine(shared_data):
    lm = np.load(shared_data / "sddi_masks" / "000006.npy").astype(np.uint8)
    for feather in (0.5, 1.5, 2.0):
        kernel = feather_kernel(feather)
        scale = float(kernel.sum()) ** 2
        assert kernel.sum() == 2 ** (kernel.size - 1) and abs(np.sqrt(kernel.size - 1) / 2 - feather) < 0.3
        patch = cut_patch(synth_photo(lm, "dark", 0), lm, 21.0, 1, feather)
        assert np.array_equal(patch.alpha * scale, np.round(patch.alpha * scale))
        assert patch.alpha.max() == 1.0 and (patch.alpha[~patch.support] == 0).all()
        assert patch.lesion.sum() < patch.support.sum()  # the feather reaches past the lesion


# -- rejections and accounting --------------------------------------------------------------------
def test_impossible_pairs_are_rejected_with_their_reason(shared_data):
    # 000221 is ~91% ruler: only a few hundred lesion/marker pixels, no label 4 skin at all.
    ruler = np.load(shared_data / "sddi_masks" / "000221.npy").astype(np.uint8)
    donor = np.load(shared_data / "sddi_masks" / "000006.npy").astype(np.uint8)
    drgb = synth_photo(donor, "dark", 1)
    kw = dict(pads=(10, 5, 0), rotate=False, dilate_px=1, feather=1.5, seed=1)
    cases = [(ruler, donor, "no_placement_fits"),
             (np.full_like(ruler, 3), donor, "base_has_no_skin"),
             (np.full_like(ruler, LABEL_SKIN), np.full_like(donor, LABEL_SKIN), "donor_has_no_lesion")]
    for base, dmap, reason in cases:
        with pytest.raises(PlacementError) as e:
            map_lesion(synth_photo(base, "light", 0), base, drgb, dmap, **kw)
        assert e.value.reason == reason


def test_every_plan_row_ends_as_a_record_or_a_rejection(mapped):
    out, summary = mapped
    plan = pl.read_parquet(out.root / "plan.parquet")
    recs, rejs = out.records(), out.rejections()
    assert plan.height == CFG.budget == len(recs) + len(rejs)
    assert {r.plan_row for r in recs} | {int(j.item_id.split("-")[-1]) for j in rejs} == set(range(plan.height))
    assert sum(summary.rejected.values()) == len(rejs)


def test_v11_keeps_the_lesion_in_place_when_no_pad_fits(mapped, stores):
    """The method: pads 10, 5, 0, then the lesion stays where it lay in the donor (typed `placement`)."""
    out, _ = mapped
    assert load_config("1.1-notebook").lesion_map.fallbacks == ("keep_in_place",) == CFG.fallbacks
    plan = pl.read_parquet(out.root / "plan.parquet")
    # 000221 (a ruler, no label-4 skin) is a base: no lesion fits on it at any pad
    ruler_rows = set(plan.filter(pl.col("base_source_ids") == "ddi:000221")["row"])
    kept = {r.plan_row: r for r in out.records() if r.placement == "kept_in_place"}
    assert ruler_rows and ruler_rows <= set(kept)
    for rec in kept.values():
        donor_rgb, donor_map = stores[1].read_image(rec.donor_id), stores[1].read_mask(rec.donor_id)
        base_hw = stores[0].read_mask(rec.base_id).shape
        patch = cut_patch(donor_rgb, donor_map, rec.params["angle"], CFG.dilate_px, CFG.feather)
        (y, x), (h, w) = patch.origin, patch.support.shape
        want = [min(max(y, 0), max(base_hw[0] - h, 0)), min(max(x, 0), max(base_hw[1] - w, 0))]
        assert rec.params["offset"] == want and rec.params["pad"] is None and rec.base_id == rec.params["planned_base_id"]
        if donor_map.shape == base_hw:  # same-size photos: exactly the donor's own position
            assert want == [y, x]


# -- lineage ---------------------------------------------------------------------------------------
def test_records_carry_full_lineage(mapped, stores):
    out, _ = mapped
    bases = {r.sample_id: r for r in stores[0].records()}
    donors = {r.sample_id: r for r in stores[1].records()}
    plan = {r["row"]: r for r in pl.read_parquet(out.root / "plan.parquet").iter_rows(named=True)}
    for rec in out.records():
        b, d, row = bases[rec.base_id], donors[rec.donor_id], plan[rec.plan_row]
        assert rec.kind == "lesion_mapped" and rec.sample_id.startswith("lesion_mapped-")
        assert (rec.skin_tone, rec.fitzpatrick) == (b.skin_tone, b.fitzpatrick)
        assert (rec.disease, rec.disease_raw, rec.malignant) == (d.disease, d.disease_raw, d.malignant)
        assert rec.source_ids == sorted(set(b.source_ids) | set(d.source_ids)) and len(rec.source_ids) == 2
        assert (row["base_id"], row["donor_id"], row["seed"]) == (rec.base_id, rec.donor_id, rec.seed)
        assert rec.generator.backend == "lesion_map"
        assert rec.params["base_skin_tone"] == b.skin_tone and rec.params["donor_skin_tone"] == d.skin_tone
        assert rec.base_source_ids == tuple(b.source_ids) and rec.donor_source_ids == tuple(d.source_ids)
        # the published params keep their copies of the hand-offs
        assert (rec.params["plan_row"], rec.params["base_source_ids"]) == (rec.plan_row, b.source_ids)
        assert rec.params["pad"] in CFG.pads if rec.placement == "fit" else rec.params["pad"] is None
        assert out.read_image(rec.sample_id).shape[:2] == out.read_mask(rec.sample_id).shape


# -- determinism, resume, sharding -----------------------------------------------------------------
def _files(store: StageStore) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in sorted(store.root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_sharded_runs_agree(mapped, stores, tmp_path):
    out, _ = mapped
    again = StageStore(tmp_path / "again")
    run_lesion_map(*stores, again, CFG, shard_size=10)
    assert _files(again) == _files(out)
    workers = StageStore(tmp_path / "workers")
    for rank in (1, 0):
        run_lesion_map(*stores, workers, CFG, shard_size=10, rank=rank, world_size=2)
    assert _files(workers) == _files(out)
    other = StageStore(tmp_path / "other")
    run_lesion_map(*stores, other, CFG, seed=CFG.seed + 1, shard_size=10)
    assert {r.sample_id for r in other.records()}.isdisjoint(r.sample_id for r in out.records())


def test_worker_pool_gives_the_same_bytes(mapped, stores, tmp_path):
    out, summary = mapped
    pooled = StageStore(tmp_path / "pooled")
    result = run_lesion_map_pool(*stores, pooled, CFG, workers=2, shard_size=10)
    assert _files(pooled) == _files(out)
    assert (result.done, dict(result.rejected)) == (summary.done, dict(summary.rejected))


def test_rerun_resumes_and_refuses_other_settings(mapped, stores):
    out, _ = mapped
    rerun = run_lesion_map(*stores, out, CFG, shard_size=10)
    assert (rerun.done, rerun.skipped) == (0, CFG.budget)
    with pytest.raises(ConfigError, match="other settings"):
        run_lesion_map(*stores, out, CFG, budget=CFG.budget + 1, shard_size=10)


# -- plans -----------------------------------------------------------------------------------------
def _meta_records(shared_data) -> tuple[list[Record], list[Record]]:
    """Metadata-only records for all 333 sDDI masks (plans need no pixels)."""
    bases, donors = [], []
    for stem, r in sorted(_ddi_rows(shared_data).items()):
        tone = DDI_TONE_TO_NAME[int(r["ddi_skin_tone"])]
        mal = r["ddi_malignant"].upper() == "TRUE"
        donors.append(Record(f"real-{stem}", "real", tone, mal, r["ddi_disease"], [f"ddi:{stem}"]))
        bases.append(Record(f"healthy-{stem}", "healthy", tone, False, "healthy", [f"ddi:{stem}"]))
    return bases, donors


def test_plan_is_balanced_over_cells_and_covers_rare_diseases(shared_data):
    bases, donors = _meta_records(shared_data)
    diseases = {d.disease for d in donors}
    groups = {(d.disease, d.skin_tone) for d in donors}
    cells = 3 * len(groups)
    plan = make_plan(bases, donors, 2 * cells + 7, seed=5)
    per_cell = plan.group_by("base_skin_tone", "disease", "donor_skin_tone").len()["len"]
    assert per_cell.len() == cells and per_cell.min() >= 2 and per_cell.max() <= 3
    small = make_plan(bases, donors, len(diseases), seed=5)
    assert set(small["disease"]) == diseases  # one row per disease, the one-donor diseases included
    tones = collections.Counter(small["base_skin_tone"])
    assert max(tones.values()) - min(tones.values()) <= 1
    src = dict(zip(plan["base_id"], plan["base_source_ids"]))
    assert all(src[b] != d for b, d in zip(plan["base_id"], plan["donor_source_ids"]))


def test_plan_is_deterministic_and_seeded(shared_data):
    bases, donors = _meta_records(shared_data)
    a = make_plan(bases, donors, 200, seed=9)
    assert a.equals(make_plan(list(reversed(bases)), donors[::-1], 200, seed=9))
    assert not a.equals(make_plan(bases, donors, 200, seed=10))
    assert a["row"].to_list() == list(range(200)) and a["seed"].n_unique() == 200
    buf = io.BytesIO()
    a.write_csv(buf)
    assert pl.read_csv(io.BytesIO(buf.getvalue())).height == 200
    with pytest.raises(ConfigError, match="budget"):
        make_plan(bases, donors, -1, seed=9)


# -- command ---------------------------------------------------------------------------------------
def _cli(*argv: str) -> int:
    return cli_main(["-q", "generate", "lesion-map", *argv])


def test_command_plans_then_maps(stores, tmp_path, capsys):
    args = ["--bases", str(stores[0].root), "--donors", str(stores[1].root), "--out", str(tmp_path / "o"),
            "--budget", "6", "--seed", "2", "--shard-size", "2"]
    assert _cli(*args, "--plan-only") == 0
    text = capsys.readouterr().out
    assert "plan: 6 rows" in text and not (tmp_path / "o" / "records").exists()
    assert pl.read_csv(tmp_path / "o" / "plan.csv").height == 6
    assert _cli(*args, "--workers", "2") == 0
    assert "[lesion_map] done=" in capsys.readouterr().out
    assert len(StageStore(tmp_path / "o").records()) + len(StageStore(tmp_path / "o").rejections()) == 6
    assert _cli(*args, "--workers", "2", "--world-size", "2") == 2
    assert "not both" in capsys.readouterr().err
    bad = ["--bases", str(stores[1].root), "--donors", str(stores[1].root), "--out", str(tmp_path / "p")]
    assert _cli(*bad) == 2  # a user error: message, exit 2, no traceback
    assert "kind 'healthy'" in capsys.readouterr().err


def test_command_with_splits_pairs_within_a_split(stores, tmp_path, capsys):
    sources = sorted({s for st in stores for r in st.records() for s in r.source_ids})
    splits = tmp_path / "splits.csv"
    splits.write_text("source_id,split\n" + "".join(f"{s},{('train', 'test')[i % 2]}\n"
                                                    for i, s in enumerate(sources)))
    args = ["--bases", str(stores[0].root), "--donors", str(stores[1].root), "--out", str(tmp_path / "o"),
            "--budget", "10", "--splits", str(splits), "--config", "1.1-notebook"]  # balanced pairs
    assert _cli(*args) == 0
    split_of = dict(zip(sources, [("train", "test")[i % 2] for i in range(len(sources))]))
    plan = pl.read_parquet(tmp_path / "o" / "plan.parquet")
    assert plan.height == 10 and set(plan["split"]) == {"train", "test"}
    for row in plan.iter_rows(named=True):
        assert split_of[row["base_source_ids"]] == split_of[row["donor_source_ids"]] == row["split"]
    splits.write_text("source_id,split\nddi:000001,holdout\n")
    assert _cli("--bases", str(stores[0].root), "--donors", str(stores[1].root), "--out", str(tmp_path / "p"),
                "--splits", str(splits)) == 2
    assert "holdout" in capsys.readouterr().err


def test_config_section_is_validated():
    assert load_config("1.1-notebook").lesion_map.pads == (10, 5, 0) and load_config("1.1").lesion_map.pads == (10,)
    from generation.lesion_map.stage import check_config

    for bad in (dict(pads=()), dict(pads=(10, -1)), dict(dilate_px=-1), dict(feather=-0.5)):
        with pytest.raises(ConfigError, match="lesion_map"):
            check_config(LesionMapConfig(**bad))
