"""The build measures its healthy images with the fill artefact detectors (builder.build.fill_artefacts): the
manifest keeps every flagged id, the card says how many each detector flagged and which."""
from __future__ import annotations

import numpy as np

from cards.artefacts import SHOWN_IDS, section
from cards.text import CardFacts
from generation.healthy import artefacts


def _stores(root):
    """A real store with three photos (a lesion disc each) and a healthy store: one photo healed by the
    quilt fill, one with the lesion painted a flat colour, one with a watermark copied into the fill."""
    from builder.core.schema import Generator, Record
    from builder.core.store import StageStore, encode_png
    from generation.healthy.quilt import quilt_fill
    from generation.healthy.region import inpaint_region
    from tests.generation.healthy.test_artefacts import disc, skin, with_text

    real, healthy = StageStore(root / "real"), StageStore(root / "healthy")
    reals, heals = [], []
    for k, how in enumerate(("quilt", "flat", "copied")):
        photo = with_text(skin(10 + k), 150, 6)
        labels = np.full(photo.shape[:2], 4, np.uint8)
        labels[disc(80, 90, 30)] = 1
        lesioned = photo.copy()
        lesioned[labels == 1] = (150, 60, 70)
        rid = f"real-{k}"
        real.put_mask(rid, labels)
        reals.append(Record(sample_id=rid, kind="real", skin_tone="light", malignant=False, disease="x",
                            source_ids=[f"src:{k}"], image_path=real.put_image(rid, encode_png(lesioned))))
        hole = inpaint_region(labels, include_marker=True, dilate_px=3, feather_px=0).mask
        healed = quilt_fill(lesioned, hole, labels == 4, 1)
        if how == "flat":
            healed[hole] = np.median(photo[~hole], axis=0).astype(np.uint8)
        if how == "copied":
            healed[70:90, 70:120] = lesioned[134:154, 0:50]
        hid = f"healthy-{how}"
        heals.append(Record(sample_id=hid, kind="healthy", skin_tone="light", malignant=False, disease="healthy",
                            source_ids=[f"src:{k}"], parent_id=rid, image_path=healthy.put_image(hid, encode_png(healed)),
                            generator=Generator("opencv"),
                            params={"include_marker": True, "dilate_px": 3, "feather_px": 0}))
    real.finish_shard("00000", reals, [])
    healthy.finish_shard("00000", heals, [])
    return heals, {"real": real, "healthy": healthy}


def test_the_build_measure_flags_each_defect_on_its_image_only(tmp_path):
    from builder.build.fill_artefacts import measure_fill_artefacts

    records, stores = _stores(tmp_path)
    found = measure_fill_artefacts(records, stores)
    assert (found["rows"], found["measured"], found["not_measured"]) == (3, 3, 0)
    flagged = {k: d["flagged"] for k, d in found["detectors"].items()}
    assert flagged["flat_texture"] == ["healthy-flat"] and flagged["copied_mark"] == ["healthy-copied"]
    assert "healthy-quilt" not in {i for ids in flagged.values() for i in ids}
    text = section(CardFacts(cfg=None, records=[], generators=[], sources=[], artefacts=found))
    assert "| `copied_mark` |" in text and "| 1 of 3 | `healthy-copied` |" in text
    assert "2 images raised at least one flag" in text
    assert measure_fill_artefacts([r for r in records if r.kind != "healthy"], stores) is None


def test_the_card_lists_ids_up_to_a_limit_and_points_to_the_manifest(tmp_path):
    from builder.core.config import load_config

    ids = [f"healthy-{k:03d}" for k in range(SHOWN_IDS + 5)]
    measured = {"rows": 40, "measured": 40, "not_measured": 0,
                "detectors": {k: {"threshold": artefacts.THRESHOLDS[k], "below": k in artefacts.BELOW,
                                  "flagged": ids if k == "tiling" else []} for k in artefacts.DETECTORS}}
    text = section(CardFacts(cfg=load_config("1.2"), records=[], generators=[], sources=[], artefacts=measured))
    assert f"| {SHOWN_IDS + 5} of 40 |" in text and "and 5 more (manifest.json)" in text
    assert f"`{ids[SHOWN_IDS - 1]}`" in text and f"`{ids[SHOWN_IDS]}`" not in text
    assert "| `flat_texture` |" in text and "< 0.65" in text
    assert section(CardFacts(cfg=load_config("1.2"), records=[], generators=[], sources=[])) == ""
