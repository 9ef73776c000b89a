"""The fill artefact detectors on planted defects: each fires on its defect and stays quiet on a clean fill.

The skin is synthetic (smoothed seeded noise on a skin colour), so each case plants exactly one defect:
a watermark copied into the fill, a straight seam between two textures, a tile repeated, a dark smudge,
a smooth blurred fill."""
from __future__ import annotations

import numpy as np
import pytest

from generation.healthy import artefacts as A

H = W = 160


def skin(seed: int, shape=(H, W)) -> np.ndarray:
    """Skin-like texture: a warm colour with fine grain and soft blotches (seeded)."""
    import cv2

    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.0)
    blotch = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 6.0)
    fine, blotch = 6 * fine / fine.std(), 10 * blotch / blotch.std()  # grey levels, as real skin's detail
    base = np.array([205.0, 160.0, 135.0])
    return np.clip(base + (fine + blotch)[..., None] * np.array([1.0, 0.9, 0.85]), 0, 255).astype(np.uint8)


def disc(cy=80, cx=80, r=40, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def with_text(rgb: np.ndarray, y: int, x: int) -> np.ndarray:
    """White 'SFS' letters with a dark outline at (y, x), as the photos' watermark."""
    import cv2

    out = rgb.copy()
    cv2.putText(out, "SFS", (x, y), cv2.FONT_HERSHEY_TRIPLEX, 0.6, (20, 20, 20), 3, cv2.LINE_AA)
    cv2.putText(out, "SFS", (x, y), cv2.FONT_HERSHEY_TRIPLEX, 0.6, (250, 250, 250), 1, cv2.LINE_AA)
    return out


def measure(healed, photo, region):
    return A.measure(healed, photo, region, ~region)


def test_a_clean_fill_raises_no_flag():
    photo = with_text(skin(1), 150, 6)  # a watermark in the corner, not copied
    region = disc()
    assert A.fired(measure(photo, photo, region)) == []


def test_a_watermark_copied_into_the_fill_is_flagged():
    photo = with_text(skin(1), 150, 6)
    healed = photo.copy()
    healed[62:82, 60:110] = photo[134:154, 0:50]  # the corner's letters, pasted into the region
    values = measure(healed, photo, disc())
    assert values["copied_mark"] > A.THRESHOLDS["copied_mark"] and "copied_mark" in A.fired(values)
    # its colour and contrast changed by the fill, the copy is still found
    faded = photo.copy()
    faded[62:82, 60:110] = (0.5 * photo[134:154, 0:50] + 0.5 * photo[62:82, 60:110]).astype(np.uint8)
    assert "copied_mark" in A.fired(measure(faded, photo, disc()))


def test_a_straight_seam_between_two_textures_is_flagged():
    photo = skin(1)
    region = disc(r=60)
    healed = photo.copy()
    other = skin(2)
    right = region.copy()
    right[:, :80] = False
    healed[right] = other[right]  # the right half of the fill from another source: a vertical seam at x = 80
    values = measure(healed, photo, region)
    assert "seam" in A.fired(values), values
    assert measure(photo, photo, region)["seam"] < A.THRESHOLDS["seam"]


def test_a_repeated_tile_is_flagged():
    photo = skin(1)
    region = disc(r=50)
    healed = photo.copy()
    tile = photo[5:31, 5:31]  # 26 px: off JPEG's 8 px grid, whose repeats the detector leaves alone
    for y in range(28, 132, 26):
        for x in range(28, 132, 26):
            healed[y:y + 26, x:x + 26] = tile
    healed[~region] = photo[~region]
    assert "tiling" in A.fired(measure(healed, photo, region))


def test_a_dark_smudge_and_a_smooth_fill_are_flagged():
    import cv2

    photo = skin(1)
    region = disc()
    smudged = photo.copy()
    cv2.circle(smudged, (60, 80), 8, (25, 20, 20), -1)
    assert A.fired(measure(smudged, photo, region)) == ["foreign_colour"]
    smooth = photo.copy()
    blurred = cv2.GaussianBlur(photo, (0, 0), 6)
    smooth[region] = blurred[region]
    assert "flat_texture" in A.fired(measure(smooth, photo, region))


@pytest.mark.parametrize("name", A.DETECTORS)
def test_every_detector_has_a_threshold_and_a_direction(name):
    assert name in A.THRESHOLDS
    value = A.THRESHOLDS[name]
    past = value * 0.5 if name in A.BELOW else value * 2
    assert A.is_fired(name, past) and not A.is_fired(name, value)
