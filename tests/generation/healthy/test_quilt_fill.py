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
