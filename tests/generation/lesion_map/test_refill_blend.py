"""Lesion-map fallbacks (v1.1: keep in place; v1.2: downscale, then another base) and Poisson blending, on
real Fitzpatrick17k photos with their hand-drawn masks."""
from __future__ import annotations

import collections
import csv
import dataclasses

import numpy as np
import pytest

from builder.core.config import HealthyConfig, load_config
from builder.core.errors import ConfigError
from builder.core.schema import Record, fitzpatrick_to_tone
from builder.core.store import StageStore, encode_png
from generation.lesion_map.blend import poisson_clone
from generation.healthy.stage import run_healthy
from generation.lesion_map.stage import check_config, run_lesion_map
from generation.lesion_map.placement import allowed_region, cut_patch, fit_donor
from generation.lesion_map.quality import halo_delta_e, lesion_footprint, placed_masks

V11 = dataclasses.replace(load_config("1.1-notebook").lesion_map, budget=30, seed=4)  # the notebook: kept in place
V12 = dataclasses.replace(load_config("1.2").lesion_map, budget=30, seed=4)


def _thumb(path, side):
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        return np.asarray(im)


@pytest.fixture(scope="module")
def stores(tmp_path_factory, shared_data):
    """Donors: 16 real photos at up to 240 px; bases: healthy (opencv) versions of them at up to 180 px,
    so many lesions are too large for a base at full size (the fallbacks' work)."""
    from curation.source.masks import read_binary_masks

    root = tmp_path_factory.mktemp("refill")
    src = shared_data / "fitz17k_lesions"
    rows = sorted(csv.DictReader((src / "metadata.csv").open()), key=lambda r: r["md5hash"])[:16]
    real, small, healthy = StageStore(root / "real"), StageStore(root / "small"), StageStore(root / "healthy")
    recs = {"real": [], "small": []}
    for r in rows:
        fitz = int(r["fitzpatrick_scale"])
        for store, side, key in ((real, 240, "real"), (small, 180, "small")):
            rgb = _thumb(src / r["image_file"], side)
            sid = f"real-{key}-{r['md5hash'][:12]}"
            store.put_mask(sid, read_binary_masks(src / r["mask_lesions"], src / r["mask_nonskin"], *rgb.shape[:2]))
            recs[key].append(Record(sid, "real", fitzpatrick_to_tone(fitz), r["three_partition_label"] == "malignant",
                                    r["label"], [f"fitz17k:{r['md5hash']}"], image_path=store.put_image(sid, encode_png(rgb)),
                                    fitzpatrick=fitz))
    real.finish_shard("ingest", recs["real"], [])
    small.finish_shard("ingest", recs["small"], [])
    assert run_healthy(small, healthy, HealthyConfig()).done == len(rows)
    return healthy, real


@pytest.fixture(scope="module")
def runs(stores, tmp_path_factory):
    root = tmp_path_factory.mktemp("refill-runs")
    out = {}
    for name, cfg in (("v11", V11), ("v12", V12), ("v12_alpha", dataclasses.replace(V12, blend="alpha")),
                      ("v12_poisson", dataclasses.replace(V12, blend="poisson")),
                      ("v12_screen", dataclasses.replace(V12, blend="poisson_screen"))):
        store = StageStore(root / name)
        out[name] = (store, run_lesion_map(*stores, store, cfg, shard_size=8))
    return out


def test_v11_keeps_what_does_not_fit_in_place_and_v12_refills_it(runs, stores):
    v11, v12 = runs["v11"][0].records(), runs["v12"][0].records()
    assert len(v11) == V11.budget  # the method never drops a row: nothing fits -> kept in place
    kept = [r for r in v11 if r.placement == "kept_in_place"]
    assert kept and all(r.params["pad"] is None and r.params["lesion_scale"] == 1.0 for r in kept)
    counts = collections.Counter(r.placement for r in v12)
    assert "kept_in_place" not in counts and counts["downscaled"] > 0
    rejected = runs["v12"][0].rejections()
    assert len(v12) + len(rejected) == V12.budget
    assert all(j.reason in ("no_placement_fits", "lesion_too_large", "base_mostly_lesion") for j in rejected)
    assert len(v12) >= 0.9 * V12.budget
    bases = {r.sample_id: r for r in stores[0].records()}
    for rec in v12:
        p = rec.params
        assert p["lesion_scale"] in (1.0, *V12.downscales)
        assert (rec.placement in ("fit", "other_base")) == (p["lesion_scale"] == 1.0)
        assert (rec.placement.startswith("other_base")) == (rec.base_id != p["planned_base_id"])
        planned, base = bases[p["planned_base_id"]], bases[rec.base_id]
        assert base.skin_tone == planned.skin_tone == rec.skin_tone
        donor_src = set(rec.source_ids) - set(base.source_ids)
        assert donor_src and rec.source_ids == sorted(set(base.source_ids) | donor_src)


def test_v12_pasted_lesions_keep_to_the_size_bound_and_v11_does_not(runs, stores):
    """v1.2: every pasted lesion covers at most max_lesion_share of its base's skin, and no base that was over
    max_base_lesion lesion before healing receives one; v1.1 (the method) has no such bound."""
    from generation.lesion_map.refill import healed_share

    bases, donors = stores
    shares = {}
    for name in ("v11", "v12"):
        recs = runs[name][0].records()
        shares[name] = [les.sum() / skin.sum() for les, _, skin in (lesion_footprint(r, bases, donors) for r in recs)]
        if name == "v12":
            assert all(healed_share(bases.read_mask(r.base_id)) <= V12.max_base_lesion for r in recs)
    assert max(shares["v12"]) <= V12.max_lesion_share
    assert max(shares["v11"]) > V12.max_lesion_share  # the bound changes something on these photos


def test_v12_placements_obey_the_skin_rule_at_their_scale(runs, stores):
    """Whatever fallback placed it, the lesion's footprint lies inside the base's skin with its pad."""
    out = runs["v12"][0]
    bases, donors = stores
    checked = 0
    for rec in out.records():
        p = rec.params
        base_rgb, base_map = bases.read_image(rec.base_id), bases.read_mask(rec.base_id)
        drgb, dmap, _ = fit_donor(donors.read_image(rec.donor_id), donors.read_mask(rec.donor_id), base_map.shape,
                                  p["donor_resize"])
        patch = cut_patch(drgb, dmap, p["angle"], p["dilate"], p["feather"], p["lesion_scale"])
        lesion, support = placed_masks(base_map.shape, patch.lesion, patch.support, tuple(p["offset"]))
        assert list(patch.support.shape) == p["patch_hw"]
        changed = (out.read_image(rec.sample_id) != base_rgb).any(axis=-1)
        assert not (changed & ~support).any()
        pad = p["pad"]
        inside = allowed_region(base_map).astype(bool)
        import cv2

        margin = cv2.erode(inside.astype(np.uint8), np.ones((2 * pad + 1,) * 2, np.uint8),
                           borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool) if pad else inside
        assert margin[support].all(), rec.sample_id
        checked += 1
    assert checked >= 20


def test_poisson_blend_removes_the_donor_skin_halo_on_real_photos(runs, stores):
    """Same plan, same placements: Poisson's ring just inside the lesion edge matches the base skin outside
    it far better than the alpha composite (CIEDE2000 of mean Lab colours)."""
    bases, donors = stores
    halos = {"v12": [], "v12_alpha": []}
    alpha_recs = {r.plan_row: r for r in runs["v12_alpha"][0].records()}
    for rec in runs["v12"][0].records():
        other = alpha_recs[rec.plan_row]
        assert (other.base_id, other.params["offset"]) == (rec.base_id, rec.params["offset"])
        lesion, support, skin = lesion_footprint(rec, bases, donors)
        for name, r in (("v12", rec), ("v12_alpha", other)):
            de = halo_delta_e(runs[name][0].read_image(r.sample_id), lesion, support, skin)
            if de is not None:
                halos[name].append(de)
    poisson, alpha = np.median(halos["v12"]), np.median(halos["v12_alpha"])
    assert len(halos["v12"]) >= 20 and poisson < 0.6 * alpha, (poisson, alpha)


def test_poisson_blend_is_deterministic_and_exact_on_a_flat_case():
    """Donor = base x a constant ratio: the cloned patch must be the base itself (the membrane is the ratio)."""
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (40, 50, 3)).astype(np.float64)
    support = np.zeros((38, 48), bool)
    support[5:30, 6:40] = True
    ctx = (base, (1, 1))
    donor = np.full((38, 48, 3), 120.0)
    a, b = poisson_clone(ctx, donor, support), poisson_clone(ctx, donor, support)
    assert np.array_equal(a, b)
    flat_base = (np.full((40, 50, 3), 90.0), (1, 1))
    np.testing.assert_allclose(poisson_clone(flat_base, donor, support)[support], 90.0, atol=1e-6)


def test_poisson_screen_keeps_bright_lesion_parts_off_white_on_real_photos(runs, stores):
    """`poisson_screen` on the same placements as `poisson`: lesion pixels darker than the donor's
    skin come out as with Poisson (within rounding), and fewer placed-lesion pixels end clipped at 255."""
    bases, donors = stores
    plain = {r.plan_row: r for r in runs["v12_poisson"][0].records()}
    clipped = {"poisson": 0, "screen": 0}
    close = total = 0
    for rec in runs["v12_screen"][0].records():
        other = plain[rec.plan_row]
        assert (other.base_id, other.params["offset"]) == (rec.base_id, rec.params["offset"])
        lesion, _, _ = lesion_footprint(rec, bases, donors)
        a = runs["v12_screen"][0].read_image(rec.sample_id)[lesion].astype(int)
        b = runs["v12_poisson"][0].read_image(other.sample_id)[lesion].astype(int)
        clipped["screen"] += int((a == 255).any(axis=1).sum())
        clipped["poisson"] += int((b == 255).any(axis=1).sum())
        unclipped = (b < 250).all(axis=1)  # where Poisson did not saturate, most pixels (the darker ones) agree
        close += int((unclipped & (np.abs(a - b) <= 1).all(axis=1)).sum())
        total += int(unclipped.sum())
    assert clipped["poisson"] > 100 and clipped["screen"] < 0.5 * clipped["poisson"], clipped
    assert close > 0.5 * total, (close, total)


def test_lesion_lab_keeps_the_lesion_colour_relative_to_its_skin_on_real_photos(runs, stores):
    """v1.2's `lesion_lab` against `poisson_screen` (v1.2 before), same placements, real lesions across tones:
    the pasted lesion's colour relative to its skin moves less (CIEDE2000) and its hue turns less."""
    from generation.lesion_map.quality import lesion_colour_error

    bases, donors = stores
    screen = {r.plan_row: r for r in runs["v12_screen"][0].records()}
    errs = {"lab": [], "screen": []}
    for rec in runs["v12"][0].records():
        other = screen.get(rec.plan_row)
        if other is None or (other.base_id, other.params["offset"]) != (rec.base_id, rec.params["offset"]):
            continue
        lesion, _, skin = lesion_footprint(rec, bases, donors)
        d_rgb, d_map = donors.read_image(rec.donor_id), donors.read_mask(rec.donor_id)
        for name, store, r in (("lab", runs["v12"][0], rec), ("screen", runs["v12_screen"][0], other)):
            e = lesion_colour_error(d_rgb, d_map, store.read_image(r.sample_id), lesion, skin.astype(bool))
            if e is not None:
                errs[name].append(e)
    assert len(errs["lab"]) >= 15
    lab, old = np.median(errs["lab"], axis=0), np.median(errs["screen"], axis=0)
    assert lab[0] < old[0] and lab[1] < old[1], (lab, old)


def test_poisson_screen_rule_on_a_flat_case():
    """Flat donor skin 80, flat base 200: a pixel darker than the skin scales by the ratio (as `poisson`),
    a brighter one keeps its distance to white in proportion: 230 -> 255 - 25 * 55 / 175, not clipped."""
    from generation.lesion_map.blend import blend_window

    base = np.full((30, 30, 3), 200.0)
    donor = np.full((30, 30, 3), 80.0)
    donor[10:20, 10:20] = 230.0
    donor[12:14, 12:14] = 40.0
    alpha = np.zeros((30, 30))
    alpha[3:27, 3:27] = 1.0
    screen = blend_window(base, donor, alpha, "poisson_screen")
    plain = blend_window(base, donor, alpha, "poisson")
    assert screen[15, 15, 0] == round(255 - 25 * 55 / 175) and plain[15, 15, 0] == 255
    assert screen[12, 12, 0] == plain[12, 12, 0] == round(41 * 201 / 81 - 1)
    assert np.array_equal(screen[alpha == 0], base[alpha == 0])


def test_same_bytes_on_rerun_with_other_worker_layout(runs, stores, tmp_path):
    store = StageStore(tmp_path / "again")
    for rank in (1, 0):
        run_lesion_map(*stores, store, V12, shard_size=8, rank=rank, world_size=2)
    mine = {p.relative_to(store.root): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}
    ref = {p.relative_to(runs["v12"][0].root): p.read_bytes() for p in runs["v12"][0].root.rglob("*") if p.is_file()}
    assert mine == ref


def test_fallback_settings_are_checked():
    for bad, match in ((dict(fallbacks=("keep_in_place", "downscale")), "must come last"),
                       (dict(fallbacks=("shrink",)), "fallbacks"), (dict(downscales=(0.5, 0.8)), "downscales"),
                       (dict(blend="seamless"), "blend"), (dict(donor_resize="square"), "donor_resize"),
                       (dict(max_lesion_share=1.5), "max_lesion_share"), (dict(max_base_lesion=0), "max_base_lesion"),
                       (dict(max_lesion_share="25%"), "max_lesion_share")):
        with pytest.raises(ConfigError, match=match):
            check_config(dataclasses.replace(V12, **bad))


def test_delivery_is_counted_per_planned_cell(runs):
    from generation.lesion_map.stage import delivery
    from generation.lesion_map.plan import delivery_summary

    for name in ("v11", "v12"):
        store = runs[name][0]
        d = delivery(store)
        recs = store.records()
        assert (d["planned"], d["delivered"]) == (30, len(recs))
        assert sum(c["planned"] for c in d["cells"]) == 30 and sum(c["delivered"] for c in d["cells"]) == len(recs)
        assert d["placement"] == dict(sorted(collections.Counter(r.placement for r in recs).items()))
        short = [c for c in d["cells"] if c["delivered"] < c["planned"]]
        text = delivery_summary(d)
        assert f"delivered {len(recs)} / 30" in text and len(short) == text.count("short:")


def test_png_level_changes_bytes_not_pixels(runs, stores, tmp_path):
    from generation.lesion_map.stage import check_config as check

    fast = StageStore(tmp_path / "level6")
    run_lesion_map(*stores, fast, dataclasses.replace(V12, png_level=6, budget=6), shard_size=8)
    ref = {r.plan_row: r for r in runs["v12"][0].records()}
    recs = fast.records()
    assert recs and load_config("1.2").lesion_map.png_level == 1 and load_config("1.1").lesion_map.png_level == 6
    for r in recs:
        other = ref[r.plan_row]
        assert np.array_equal(fast.read_image(r.sample_id), runs["v12"][0].read_image(other.sample_id))
        assert fast.image_path(r.sample_id).read_bytes() != runs["v12"][0].image_path(other.sample_id).read_bytes()
    with pytest.raises(ConfigError, match="png_level"):
        check(dataclasses.replace(V12, png_level=11))
