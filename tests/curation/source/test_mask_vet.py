"""Automatic masks refuse what is not a lesion: text, backdrops, rulers, a whole body part (curation/source/automasks/vet.py)."""
from __future__ import annotations

import numpy as np
import pytest

from builder.core.schema import LABEL_BACKGROUND, LABEL_LESION, LABEL_RULER, LABEL_SKIN
from curation.source.automasks.vet import MAX_SKIN_SHARE, strokes, text, vet

SKIN = (205, 150, 120)


def _photo(h: int = 240, w: int = 320) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.clip(np.asarray(SKIN, np.float64) + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    return img


def _disc(h: int, w: int, cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_watermark_text_is_cut_out_of_the_lesion_and_labelled_background():
    import cv2

    img = _photo()
    lesion = _disc(240, 320, 120, 160, 40)
    img[lesion] = (120, 60, 50)
    cv2.putText(img, "SFS", (8, 228), cv2.FONT_HERSHEY_TRIPLEX, 0.8, (250, 250, 250), 2, cv2.LINE_AA)
    found = text(img)
    assert found[205:235, 5:70].mean() > 0.2 and not found[lesion].any()
    lm = np.full((240, 320), LABEL_SKIN, np.uint8)
    lm[lesion] = LABEL_LESION
    lm[200:236, 0:75] = LABEL_LESION  # the backend took the watermark for a lesion
    out = vet(img, lm, 0.9)
    assert not (out.label_map[found] == LABEL_LESION).any()
    assert (out.label_map[found] == LABEL_BACKGROUND).all()
    assert out.confidence > 0.5  # the real lesion keeps its mask


def test_a_whole_body_part_against_a_white_backdrop_is_refused():
    img = np.full((240, 320, 3), (246, 232, 250), np.uint8)  # white sheet under a magenta cast
    hand = np.zeros((240, 320), bool)
    hand[60:180, :250] = True
    img[hand] = (215, 160, 205)
    img[_disc(240, 320, 120, 150, 12)] = (70, 40, 50)
    lm = np.full((240, 320), LABEL_SKIN, np.uint8)
    lm[hand] = LABEL_LESION  # the backend took the whole palm for the lesion
    out = vet(img, lm, 0.92)
    assert out.factors["skin_share"] > MAX_SKIN_SHARE and out.confidence == 0.0
    assert (out.label_map[~hand] == LABEL_BACKGROUND).mean() > 0.95


def test_a_ruler_along_the_edge_is_labelled_3_and_never_lesion():
    img = _photo()
    img[:, :30] = (110, 135, 145)  # grey-blue ruler band
    for y in range(6, 240, 12):
        img[y:y + 2, 4:22] = (20, 20, 25)  # ticks
    lm = np.full((240, 320), LABEL_SKIN, np.uint8)
    lm[:, :30] = LABEL_LESION
    lm[_disc(240, 320, 120, 180, 40)] = LABEL_LESION
    img[_disc(240, 320, 120, 180, 40)] = (120, 70, 40)
    out = vet(img, lm, 0.8)
    assert (out.label_map[:, 5:25] == LABEL_RULER).mean() > 0.8
    assert not (out.label_map[:, :30] == LABEL_LESION).any()


def test_a_lesion_in_skin_passes_unchanged():
    img = _photo()
    lesion = _disc(240, 320, 120, 160, 50)
    img[lesion] = (130, 70, 60)
    lm = np.where(lesion, LABEL_LESION, LABEL_SKIN).astype(np.uint8)
    out = vet(img, lm, 0.7)
    assert out.confidence == 0.7 and np.array_equal(out.label_map, lm)


# -- the real photos: the palm on white and the "SFS" watermarks -------------------------------------------
PALM, WATERMARKED = "0d8457af", ("0a55e2e0", "0a102c96", "0f02445f", "0eae940a", "1d56b7d6", "0e02faeb")


def _real(shared_data, prefix: str):
    import csv

    from builder.core.store import decode_rgb

    root = shared_data / "fitz17k_lesions"
    row = next(r for r in csv.DictReader(open(root / "metadata.csv")) if r["md5hash"].startswith(prefix))
    return decode_rgb((root / row["image_file"]).read_bytes())


@pytest.mark.parametrize("prefix", [PALM, *WATERMARKED])
def test_real_palm_is_refused_and_no_watermark_is_accepted_as_lesion(shared_data, prefix):
    """The default backend on the real photos: the palm's mask is refused; on the watermarked photos the
    "SFS" in the bottom-left corner is never lesion in an accepted mask."""
    from curation.source.automasks.cpu import segment

    rgb = _real(shared_data, prefix)
    raw = segment(rgb)
    out = vet(rgb, raw.label_map, raw.confidence)
    if prefix == PALM:
        assert raw.confidence > 0.9 and out.confidence < 0.4
        return
    h, w = rgb.shape[:2]
    letters = np.zeros((h, w), bool)
    letters[int(h * 0.86):, :int(w * 0.16)] = True
    letters &= strokes(rgb)  # the white letters' pixels
    assert letters.sum() > 100
    if prefix in ("0a55e2e0", "0a102c96", "0f02445f", "0e02faeb"):  # the backend took the letters for lesion
        assert (raw.label_map[letters] == LABEL_LESION).any()
    assert out.confidence < 0.4 or not (out.label_map[letters] == LABEL_LESION).any()
