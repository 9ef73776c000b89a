"""v1.2's `lesion_lab` blend: drape pixels in a donor's lesion mask never reach the base, and a dark-skin
lesion's grey rim is not amplified into a cyan one (one colour rule per pixel, in CIE Lab)."""
from __future__ import annotations

import numpy as np
import pytest

from builder.core.colour import lab_to_rgb, rgb_to_lab
from builder.core.schema import LABEL_LESION, LABEL_SKIN
from generation.lesion_map.placement import cut_patch, map_lesion

DARK_SKIN, LIGHT_SKIN = (92, 62, 48), (228, 192, 172)


def _flat(shape, colour, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(np.asarray(colour, np.float64) + rng.normal(0, 2, shape + (3,)), 0, 255).astype(np.uint8)


def _scc_donor():
    """A dark-skin SCC-like donor: pink-red plaque, a grey rim (G, B above the skin, R below) and a
    yellow-white crust; returns (rgb, label map, rim mask)."""
    yy, xx = np.mgrid[:120, :120]
    r = np.hypot(yy - 60, xx - 60)
    rgb = _flat((120, 120), DARK_SKIN).astype(np.float64)
    lesion, rim = r < 28, (r < 28) & (r > 21)
    rgb[lesion], rgb[rim], rgb[r < 9] = (150, 85, 80), (62, 68, 66), (215, 200, 165)
    return rgb.astype(np.uint8), np.where(lesion, LABEL_LESION, LABEL_SKIN).astype(np.uint8), rim


def _map(donor, dmap, blend):
    base = _flat((160, 160), LIGHT_SKIN, seed=1)
    bmap = np.full((160, 160), LABEL_SKIN, np.uint8)
    return base, map_lesion(base, bmap, donor, dmap, pads=(0,), rotate=False, dilate_px=1, feather=1.5, seed=0,
                            blend=blend, donor_resize="none")


def _placed(mask, donor, dmap, mapped):
    """`mask` (donor coordinates) where it landed in the mapped image (rotation 0: a shift)."""
    oy, ox = cut_patch(donor, dmap, 0.0, 1, 1.5).origin
    (y, x), (h, w) = mapped.offset, mapped.patch_hw
    out = np.zeros(mapped.label_map.shape, bool)
    out[y:y + h, x:x + w] = mask[oy:oy + h, ox:ox + w]
    return out


def test_lab_round_trip_is_exact_to_a_grey_level():
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3)).astype(np.float64)
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)) - rgb).max() < 1e-6


@pytest.mark.parametrize("blend", ["lesion_lab", "poisson_screen"])
def test_a_drape_pixel_in_the_donor_mask_never_reaches_the_base(blend):
    donor, dmap, _ = _scc_donor()
    drape = np.zeros(dmap.shape, bool)
    drape[55:66, 70:87] = True  # a strip of green drape inside the lesion's mask (label 1)
    donor[drape] = (40, 150, 90)
    assert (dmap[drape] == LABEL_LESION).all()
    base, mapped = _map(donor, dmap, blend)
    landed = _placed(drape, donor, dmap, mapped)
    green = rgb_to_lab(mapped.rgb.astype(np.float64))[..., 1] < -5
    if blend == "lesion_lab":
        assert np.array_equal(mapped.rgb[landed], base[landed]) and not green.any()
        assert not (mapped.label_map[landed] == LABEL_LESION).any()
    else:  # the v1.2 blend before: the drape is pasted (what the new one prevents)
        assert green[landed].mean() > 0.5


def test_a_dark_skin_lesions_grey_rim_keeps_its_colour_offset_instead_of_turning_cyan():
    donor, dmap, rim = _scc_donor()
    donor_offset = rgb_to_lab(donor[rim].astype(np.float64)).mean(0) - rgb_to_lab(np.array(DARK_SKIN, np.float64))
    donor_green = float((donor[rim, 1].astype(int) - donor[rim, 0]).mean())
    result = {}
    for blend in ("lesion_lab", "poisson_screen"):
        _, mapped = _map(donor, dmap, blend)
        px = mapped.rgb[_placed(rim, donor, dmap, mapped)].astype(np.float64)
        offset = rgb_to_lab(px).mean(0) - rgb_to_lab(np.array(LIGHT_SKIN, np.float64))
        result[blend] = (float(np.hypot(*(offset - donor_offset)[1:])), float((px[:, 1] - px[:, 0]).mean()))
    ab_err, green = result["lesion_lab"]
    assert ab_err < 3 and green < donor_green + 5  # the rim stays the grey it was next to its skin
    old_err, old_green = result["poisson_screen"]
    assert old_err > 8 and old_green > donor_green + 20  # per-channel rules: a teal rim (G 38 over R)


def test_a_blue_backdrop_the_outline_ran_into_is_left_out_and_a_blue_naevus_is_kept():
    """A donor photographed against a blue sheet, its lesion outline running into the sheet: the sheet's
    pixels inside the mask (their blue region continues outside the lesion) never reach the base; a blue
    blot inside the lesion, surrounded by lesion and skin, is the lesion's own colour and is pasted."""
    from generation.lesion_map.blend import donor_exclude

    donor, dmap, _ = _scc_donor()
    sheet = np.zeros(dmap.shape, bool)
    sheet[:, 75:] = True  # a blue sheet over the right of the frame, through the lesion's right part
    donor[sheet] = (40, 110, 170)
    naevus = np.zeros(dmap.shape, bool)
    naevus[52:62, 40:50] = True  # blue-grey blot well inside the lesion
    donor[naevus] = (70, 80, 120)
    lesion = dmap == LABEL_LESION
    out = donor_exclude(donor, dmap, "lesion_lab")
    assert out[sheet & lesion].all() and not out[naevus].any()
    assert not out[lesion & ~sheet].any()
    assert donor_exclude(donor, dmap, "poisson_screen") is None
    base, mapped = _map(donor, dmap, "lesion_lab")
    landed, blot = _placed(sheet & lesion, donor, dmap, mapped), _placed(naevus, donor, dmap, mapped)
    assert np.array_equal(mapped.rgb[landed], base[landed])
    blue = rgb_to_lab(mapped.rgb.astype(np.float64))[..., 2] < -10
    assert blue[blot].mean() > 0.5  # the naevus keeps its blue on the light base
