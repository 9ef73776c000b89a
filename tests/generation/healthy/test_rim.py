"""The perilesional rim (v1.2's `healthy.rim_px`): skin just outside the hand mask that belongs to the lesion
(a raised tumour's shadow, a pale collar, a red halo) joins the inpaint region, so the heal leaves no ghost
ring; a limb's shading and evenly textured skin do not."""
from __future__ import annotations

import numpy as np
import pytest

from builder.core.schema import LABEL_LESION, LABEL_SKIN
from generation.healthy.quilt import quilt_fill
from generation.healthy.region import composite, inpaint_region, perilesional_rim
from tests.generation.healthy.test_artefacts import disc, skin

SHAPE = (400, 400)


def _lesion_with_shadow(shading: float = 0.0, shadow_depth: float = 35.0):
    """A tumour (r 60) on textured skin with a dark shadow crescent (8 px wide, left side) outside its mask,
    `shadow_depth` grey levels darker; `shading` grey levels of lightness across the frame (a limb's)."""
    photo = skin(4, SHAPE).astype(np.float64)
    photo += np.linspace(-shading / 2, shading / 2, SHAPE[1])[None, :, None]
    lesion = disc(200, 200, 60, SHAPE)
    shadow = disc(200, 200, 68, SHAPE) & ~lesion & (np.arange(SHAPE[1]) < 185)[None, :]
    photo[shadow] -= shadow_depth
    photo[lesion] = (150, 60, 70)
    labels = np.where(lesion, LABEL_LESION, LABEL_SKIN).astype(np.uint8)
    return np.clip(photo, 0, 255).astype(np.uint8), labels, shadow


def test_a_shadow_crescent_outside_the_mask_joins_the_region_and_the_other_side_does_not():
    photo, labels, shadow = _lesion_with_shadow()
    plain = inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=2)
    grown = inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=2, rim_px=12, rgb=photo)
    rim = grown.mask & ~plain.mask
    assert rim[shadow & ~plain.mask].mean() > 0.85, rim[shadow & ~plain.mask].mean()
    # the rim reaches past the crescent by about the feather's width + 1 (its ramp lies on skin), hardly farther
    assert (rim & ~disc(200, 200, 68 + 3 + 3, SHAPE)).sum() < 0.05 * rim.sum()
    other_side = disc(200, 200, 75, SHAPE) & ~plain.mask & (np.arange(SHAPE[1]) > 215)[None, :]
    assert rim[other_side].mean() < 0.03, rim[other_side].mean()
    assert (grown.alpha[~grown.mask] == 0).all() and grown.alpha[shadow].mean() > 0.8, grown.alpha[shadow].mean()


def _rim_share(shading: float) -> float:
    photo, labels, _ = _lesion_with_shadow(shading=shading, shadow_depth=0.0)
    mask = inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=0).mask
    rim = perilesional_rim(photo, mask, (labels == LABEL_SKIN) & ~mask, 12)
    return float(rim[disc(200, 200, 75, SHAPE) & ~mask].mean())


def test_a_limbs_shading_adds_no_rim():
    """Without a shadow the rim is at most a dark mottle that touches the lesion; 80 grey levels of shading
    across the frame add nothing to it (the skin beyond is compared locally)."""
    plain = _rim_share(0.0)
    assert plain < 0.1, plain
    assert _rim_share(80.0) <= plain + 0.02


def test_the_heal_leaves_no_dark_ring_where_the_shadow_was():
    photo, labels, shadow = _lesion_with_shadow()
    far = ~disc(200, 200, 110, SHAPE)
    grey = photo.astype(np.float64).mean(axis=-1)

    def healed(rim_px: int) -> np.ndarray:
        region = inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=2, rim_px=rim_px, rgb=photo)
        filled = quilt_fill(photo, region.mask, (labels == LABEL_SKIN) & ~region.mask, seed=1)
        return composite(photo, filled, region).astype(np.float64).mean(axis=-1)

    dark_without = grey[far].mean() - healed(0)[shadow].mean()
    dark_with = grey[far].mean() - healed(12)[shadow].mean()
    assert dark_without > 20, dark_without  # the crescent stays: it was outside the region
    assert abs(dark_with) < 6, dark_with


def test_a_rim_needs_the_photo():
    _, labels, _ = _lesion_with_shadow()
    with pytest.raises(ValueError, match="rim_px=12 reads the photo"):
        inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=2, rim_px=12)
