"""v1.2's CPU healthy fill (`quilt`): texture only from clean skin, so a watermark, a drape or the frame's edge
beside the hole never comes into it; deterministic; pixels outside the hole untouched."""
from __future__ import annotations

import numpy as np

from builder.core.config import load_config
from generation.healthy import artefacts as A
from generation.healthy.exemplar import exemplar_fill
from generation.healthy.quilt import clean_skin, quilt_fill
from tests.generation.healthy.test_artefacts import disc, skin, with_text


def test_v12_and_v11s_stand_in_use_the_quilt_fill_and_the_notebook_config_keeps_telea():
    assert load_config("1.2").healthy.opencv_method == "quilt"
    assert load_config("1.1").healthy.opencv_method == "quilt"  # the CPU stand-in for Kandinsky 2.2
    assert load_config("1.1-notebook").healthy.opencv_method == "telea"


def test_a_text_patch_beside_the_hole_is_never_copied_into_it():
    photo = skin(3, (200, 200))
    for y, x in ((60, 10), (100, 12), (140, 8), (180, 14)):  # a column of watermarks just left of the hole
        photo = with_text(photo, y, x)
    hole = disc(100, 110, 40, (200, 200))
    everything = np.ones(hole.shape, bool)  # the text lies on "skin": the label map does not know it
    hidden = photo.copy()
    hidden[hole] = 0
    filled = quilt_fill(hidden, hole, everything, seed=5)
    assert np.array_equal(filled[~hole], photo[~hole])
    assert not A.text_strokes(filled)[hole].any()
    assert A.copied_mark(filled, photo, hole) == 0
    assert not clean_skin(photo, hole, everything)[A.mark_parts(photo)[0]].any()  # no mark is a source
    assert np.array_equal(filled, quilt_fill(hidden, hole, everything, seed=5))  # deterministic
    # the nearest-region exemplar fill, on the same hole, does copy letters in: the test can fail
    assert A.copied_mark(exemplar_fill(hidden, hole, everything, seed=5), photo, hole) > 0


def test_a_hole_at_the_frame_edge_beside_a_drape_gets_no_dark_smudge():
    photo = skin(4, (160, 160))
    drape = np.zeros((160, 160), bool)
    drape[:, :30] = True
    photo[drape] = (30, 90, 70)  # a dark green drape on the left
    hole = disc(0, 60, 34, (160, 160)) & ~drape  # touches the top edge and the drape
    hole |= disc(0, 60, 34, (160, 160)) & (np.arange(160)[None, :] < 34) & (np.arange(160)[None, :] >= 30)
    skin_mask = ~drape
    hidden = photo.copy()
    hidden[hole] = 0
    filled = quilt_fill(hidden, hole, skin_mask & ~hole, seed=1)
    values = A.measure(filled, photo, hole, skin_mask & ~hole)
    assert "foreign_colour" not in A.fired(values), values
    assert not A.non_skin_colour(filled)[hole].any()


def _mottled(seed: int, shape) -> np.ndarray:
    """Skin whose variation is mostly mid-scale (blotches of sigma 12 px) over a fine grain."""
    import cv2

    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.0)
    mid = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 12.0)
    grey = 5 * fine / fine.std() + 12 * mid / mid.std()
    return np.clip(np.array([200.0, 155.0, 130.0]) + grey[..., None] * np.array([1.0, 0.9, 0.85]), 0, 255
                   ).astype(np.uint8)


def _mid_band(rgb: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return cv2.GaussianBlur(grey, (0, 0), 4) - cv2.GaussianBlur(grey, (0, 0), 24)


def test_a_large_hole_keeps_the_mid_scale_variation_of_the_skin_around_it(monkeypatch):
    """A large heal is no smooth oval: the coarse band carries the blotches a membrane alone smooths away
    (measured as the 4-24 px band's spread inside the hole, against the hidden truth's)."""
    import generation.healthy.quilt as Q

    shape = (480, 480)
    photo, hole, inner = _mottled(3, shape), disc(240, 240, 120, shape), disc(240, 240, 95, shape)
    hidden = photo.copy()
    hidden[hole] = 0
    truth = _mid_band(photo)[inner].std()
    filled = quilt_fill(hidden, hole, ~hole, seed=4)
    assert np.array_equal(filled[~hole], photo[~hole])
    assert _mid_band(filled)[inner].std() > 0.5 * truth
    monkeypatch.setattr(Q, "COARSE_HOLE", 1e9)  # the fill without its coarse band fails the same measure
    assert _mid_band(quilt_fill(hidden, hole, ~hole, seed=4))[inner].std() < 0.5 * truth


def test_a_red_halo_around_the_lesion_fades_instead_of_tinting_the_whole_heal(monkeypatch):
    """An inflamed ring outside the lesion is the fill's colour at its edge only: deeper in, its a* turns
    to the skin's around it (the membrane of the ring alone carries the halo's red across the heal)."""
    import cv2

    import generation.healthy.quilt as Q

    shape = (400, 400)
    hole, centre = disc(200, 200, 90, shape), disc(200, 200, 35, shape)
    halo = disc(200, 200, 112, shape) & ~hole
    photo = skin(2, shape).astype(np.float64)
    photo[halo] += (22, -8, -6)
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    hidden = photo.copy()
    hidden[hole] = 0
    a_star = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB)[..., 1].astype(np.float64)
    far, red = a_star[~disc(200, 200, 150, shape)].mean(), a_star[halo].mean()

    def centre_red(filled):
        return (cv2.cvtColor(filled, cv2.COLOR_RGB2LAB)[..., 1][centre].mean() - far) / (red - far)

    assert centre_red(quilt_fill(hidden, hole, ~hole, seed=2)) < 0.6
    monkeypatch.setattr(Q, "HALO_FRAC", 0.0)
    monkeypatch.setattr(Q, "MIN_HALO", 0)  # the ring's membrane alone: the centre is as red as the halo
    assert centre_red(quilt_fill(hidden, hole, ~hole, seed=2)) > 0.8


def _dotted(seed: int, shape=(400, 400)) -> np.ndarray:
    """Skin with coarse fine grain and red dots every 28 px on its left half, smooth and dotless on its right:
    whole clean squares fit only on the right (the dots and their margins interrupt the left)."""
    import cv2

    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), 1.0)
    amp = np.where(np.arange(shape[1]) < shape[1] // 2, 10.0, 4.0)[None, :]
    out = np.array([200.0, 155.0, 130.0]) + (amp * fine / fine.std())[..., None] * np.array([1.0, 0.9, 0.85])
    for y in range(10, shape[0], 28):
        for x in range(10, shape[1] // 2, 28):
            out[disc(y, x, 2, shape)] = (215, 120, 115)
    return np.clip(out, 0, 255).astype(np.uint8)


def _fine_band(rgb: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return grey - cv2.GaussianBlur(grey, (0, 0), 2.0)


def test_the_fill_keeps_the_fine_detail_of_clean_skin_where_whole_squares_fit_only_on_its_smoother_part(
        monkeypatch):
    """Tiles come from whole clean squares, which fit where skin is least interrupted (here: only on the
    smooth half); the fill's finest band is raised towards the clean skin's own spread, and on evenly
    textured skin it stays as fine as the hidden truth (no sharpening where nothing was lost)."""
    import generation.healthy.quilt as Q
    from generation.healthy.artefacts import dilate

    shape = (400, 400)
    photo, hole, inner = _dotted(1, shape), disc(200, 200, 70, shape), disc(200, 200, 60, shape)
    hidden = photo.copy()
    hidden[hole] = 0
    clean = clean_skin(hidden, hole, ~hole)
    target = _fine_band(photo)[clean & ~dilate(~clean, 4)].std()  # the clean skin's, dotted half included
    restored = _fine_band(quilt_fill(hidden, hole, ~hole, seed=3))[inner].std()
    monkeypatch.setattr(Q, "MAX_DETAIL_GAIN", 1.0)  # the squares' own detail: the smooth half's
    as_laid = _fine_band(quilt_fill(hidden, hole, ~hole, seed=3))[inner].std()
    assert as_laid < 0.65 * target, (as_laid, target)
    assert restored > 0.75 * target and restored > 1.3 * as_laid, (restored, as_laid, target)

    monkeypatch.setattr(Q, "MAX_DETAIL_GAIN", 1.5)
    even = skin(5, shape)
    hidden = even.copy()
    hidden[hole] = 0
    truth = _fine_band(even)[inner].std()
    assert _fine_band(quilt_fill(hidden, hole, ~hole, seed=3))[inner].std() < 1.15 * truth
