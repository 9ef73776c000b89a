"""Each automatic review flag on real Fitzpatrick17k photos: one case where it fires, one where it does not.

The "fires" cases are the defects reviewers meet: a lesion left in a healthy image, a fill in colours
no surrounding skin has, a watermark copied into a fill, a lesion pasted onto the background, an
automatic mask that took a watermark (SFS) or a whole palm for a lesion."""
import numpy as np
import pytest

from builder.published.review import flags as F

WATERMARK = ("0a55e2e0", "0a102c96")
PALM = "0d8457af"


def _load(shared_data, prefix):
    from PIL import Image

    folder = shared_data / "fitz17k_lesions"
    [photo] = [p for p in (folder / "images").iterdir() if p.name.startswith(prefix)]
    stem = photo.stem
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    lesion = np.asarray(Image.open(folder / "masks" / f"{stem}_lesions.png").convert("L")) > 127
    nonskin = np.asarray(Image.open(folder / "masks" / f"{stem}_nonskin.png").convert("L")) > 127
    return rgb, lesion, nonskin


def _labels(lesion, nonskin):
    labels = np.where(nonskin, 0, 4).astype(np.uint8)
    labels[lesion] = 1
    return labels


def _telea(rgb, region):
    import cv2

    return cv2.inpaint(rgb, region.astype(np.uint8), 5, cv2.INPAINT_TELEA)


def _watermark_box(rgb):
    """The bright grey 'SFS' letters in the bottom-left corner, boxed with a 3-pixel margin."""
    L = F.lab(rgb)
    h, w = rgb.shape[:2]
    text = (L[..., 0] > 85) & (np.hypot(L[..., 1], L[..., 2]) < 12)
    text[: int(h * 0.8)] = False
    text[:, int(w * 0.25):] = False
    ys, xs = np.nonzero(text)
    box = np.zeros((h, w), bool)
    box[ys.min() - 3: ys.max() + 4, max(xs.min() - 3, 0): xs.max() + 4] = True
    return box


def _fired(flags, name):
    [flag] = [f for f in flags if f.name == name]
    return flag.fired


def test_lesion_remains_fires_on_the_untouched_photo_not_on_a_fill(shared_data):
    rgb, lesion, nonskin = _load(shared_data, "02cf3ed8")
    region = F.dilate(lesion, 3)
    skin = ~nonskin & ~region
    assert _fired(F.healthy_flags(rgb, region, skin), "lesion_remains")
    assert not _fired(F.healthy_flags(_telea(rgb, region), region, skin), "lesion_remains")


def test_fill_off_colour_fires_on_a_colour_no_skin_around_has(shared_data):
    rgb, lesion, nonskin = _load(shared_data, "0c843edc")
    region = F.dilate(lesion, 3)
    skin = ~nonskin & ~region
    odd = _telea(rgb, region)
    odd[region] = (60, 170, 90)  # a green fill
    assert _fired(F.healthy_flags(odd, region, skin), "fill_off_colour")
    assert not _fired(F.healthy_flags(_telea(rgb, region), region, skin), "fill_off_colour")


@pytest.mark.parametrize("prefix", WATERMARK)
def test_text_in_fill_fires_on_a_watermark_copied_into_the_fill(shared_data, prefix):
    rgb, lesion, nonskin = _load(shared_data, prefix)
    box = _watermark_box(rgb)
    ys, xs = np.nonzero(box)
    region = F.dilate(lesion, 3)
    y0, x0 = np.argwhere(region).min(axis=0)
    copied = _telea(rgb, region)  # an exemplar fill that copied the corner's letters into the region
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    copied[y0:y0 + h, x0:x0 + w] = rgb[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    filled = np.zeros_like(region)
    filled[y0:y0 + h, x0:x0 + w] = True
    assert _fired(F.healthy_flags(copied, filled, ~nonskin & ~filled), "text_in_fill")
    assert not _fired(F.healthy_flags(_telea(rgb, region), region, ~nonskin & ~region), "text_in_fill")


def test_given_the_photo_the_fill_artefact_detectors_flag_the_old_exemplar_fill_not_the_quilt(shared_data):
    """0a102c96: the nearest-region exemplar fill copies the corner's SFS into the healed region; the quilt
    fill, from clean skin only, does not."""
    from generation.healthy.exemplar import exemplar_fill
    from generation.healthy.quilt import quilt_fill

    rgb, lesion, nonskin = _load(shared_data, "0a102c96")
    region = F.dilate(lesion, 3) & ~nonskin | lesion
    skin = ~nonskin & ~region
    hidden = rgb.copy()
    hidden[region] = 0
    old, new = exemplar_fill(hidden, region, skin, 7), quilt_fill(hidden, region, skin, 7)
    assert F.healthy_flags(old, region, skin) == F.healthy_flags(old, region, skin, photo=None)  # opt-in
    flagged = {f.name: f for f in F.healthy_flags(old, region, skin, photo=rgb)}
    assert flagged["copied_mark"].fired and flagged["copied_mark"].to_json()["fired"]
    assert {"copied_mark", "foreign_colour", "seam", "tiling", "flat_texture"} <= set(flagged)
    assert not _fired(F.healthy_flags(new, region, skin, photo=rgb), "copied_mark")


@pytest.mark.parametrize("prefix", WATERMARK)
def test_a_mask_that_took_the_watermark_is_flagged_the_hand_mask_is_not(shared_data, prefix):
    rgb, lesion, nonskin = _load(shared_data, prefix)
    on_text = F.fired(F.mask_flags(rgb, _labels(_watermark_box(rgb), nonskin)))
    assert "mask_text_like" in on_text and "mask_non_skin_colour" in on_text
    assert F.fired(F.mask_flags(rgb, _labels(lesion, nonskin))) == []


def test_a_mask_that_took_the_whole_palm_is_flagged_the_hand_mask_is_not(shared_data):
    rgb, lesion, nonskin = _load(shared_data, PALM)
    palm = F.fired(F.mask_flags(rgb, _labels(~nonskin, nonskin)))
    assert {"mask_touches_frame", "mask_covers_frame"} <= set(palm)
    hand = F.fired(F.mask_flags(rgb, _labels(lesion, nonskin)))
    assert "mask_touches_frame" not in hand and "mask_covers_frame" not in hand and "mask_text_like" not in hand


def test_a_lesion_pasted_onto_the_background_or_over_the_frame_is_flagged(shared_data):
    base, _, nonskin = _load(shared_data, PALM)  # a palm on a white background
    base_labels = _labels(np.zeros_like(nonskin), nonskin)
    ys, _ = np.nonzero(nonskin)
    on_bg = base_labels.copy()
    on_bg[ys[0]:ys[0] + 20, :] = np.where(nonskin[ys[0]:ys[0] + 20, :], 1, on_bg[ys[0]:ys[0] + 20, :])
    assert "paste_off_skin" in F.fired(F.lesion_map_flags(base, base_labels, on_bg))
    sy, sx = np.argwhere(~nonskin).mean(axis=0).astype(int)  # the middle of the palm
    on_skin = base_labels.copy()
    on_skin[sy - 10:sy + 10, sx - 10:sx + 10] = 1
    assert F.fired(F.lesion_map_flags(base, base_labels, on_skin)) == []
    everywhere = np.ones_like(base_labels)
    assert "paste_covers_frame" in F.fired(F.lesion_map_flags(base, base_labels, everywhere))


def test_the_automatic_masks_of_the_watermark_and_palm_photos_are_flagged(tmp_path, shared_data):
    """The weight-free backend's own outlines of the real photos: the watermark photos' masks take the 'SFS'
    letters and the palm's runs over the palm to the frame (0.92), and the review flags say so. The build's
    vetting, run on every automatic mask before the gate, then refuses the palm and cuts the letters out."""
    import csv
    import shutil

    from builder.core.config import MasksConfig
    from curation.source.automasks import cpu
    from curation.source.automasks.run import run_masks
    from curation.source.masks import read_auto_index, read_sddi_mask

    raw = {p: F.fired(F.mask_flags(rgb, cpu.segment(rgb).label_map))
           for p in (*WATERMARK, PALM) for rgb in [_load(shared_data, p)[0]]}
    assert all("mask_text_like" in raw[p] for p in WATERMARK), raw
    assert "mask_touches_frame" in raw[PALM], raw

    src = shared_data / "fitz17k_lesions"
    table = (src / "metadata.csv").read_text().splitlines()
    rows = [r for r in csv.DictReader(table) if r["md5hash"][:8] in (*WATERMARK, PALM)]
    dst = tmp_path / "src"
    (dst / "images").mkdir(parents=True)
    with open(dst / "metadata.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        shutil.copy(src / r["image_file"], dst / "images")
    run_masks(dst, None, tmp_path / "auto", MasksConfig(min_confidence=0.4))
    index = {sid.split(":")[-1][:8]: entry for sid, entry in read_auto_index(tmp_path / "auto").items()}
    assert not index[PALM]["accepted"] and index[PALM]["reason"] == "mask_low_confidence", index[PALM]
    assert any(index[p]["accepted"] for p in WATERMARK), index
    for p in WATERMARK:
        if index[p]["accepted"]:  # kept: the letters are no longer lesion
            rgb = _load(shared_data, p)[0]
            vetted = F.fired(F.mask_flags(rgb, read_sddi_mask(tmp_path / "auto" / index[p]["file"], *rgb.shape[:2])))
            assert "mask_text_like" not in vetted, (p, vetted)
