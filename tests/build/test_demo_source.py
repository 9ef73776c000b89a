"""The embedded demo source: deterministic, DDI layout, sDDI masks with every label, three tones."""
import hashlib

import numpy as np
import polars as pl

from builder.demo_source import synthesize_photo, write_demo_source
from builder.core.store import StageStore
from curation.source.ingest import ingest_source


def _digest(folder):
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and not f.name.startswith("."):
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_demo_source_is_deterministic_and_ddi_shaped(tmp_path):
    a = write_demo_source(tmp_path / "a", 24, 7)
    b = write_demo_source(tmp_path / "b", 24, 7)
    assert _digest(a) == _digest(b)
    assert _digest(write_demo_source(tmp_path / "c", 24, 8)) != _digest(a)
    meta = pl.read_csv(a / "ddi_metadata.csv")
    assert meta.columns == ["", "DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"]
    assert sorted(set(meta["skin_tone"])) == [12, 34, 56]
    assert set(meta["malignant"]) == {True, False}
    assert meta["disease"].n_unique() >= 6
    labels = set()
    for stem in meta["DDI_file"].str.replace(".png", ""):
        m = np.load(a / "masks" / f"{stem}.npy")
        assert m.shape == (256, 256) and m.dtype == np.int32
        assert (m == 1).any(), f"{stem} has no lesion"
        labels |= set(np.unique(m).tolist())
    assert labels == {0, 1, 2, 3, 4}


def test_photo_sizes_and_tones():
    sizes, means = set(), {}
    for i in range(12):
        img, labels, meta = synthesize_photo(i, 1)
        assert 256 <= img.shape[0] <= 512 and 256 <= img.shape[1] <= 512
        assert img.shape[:2] == labels.shape
        sizes.add(img.shape[:2])
        means.setdefault(meta["skin_tone"], []).append(img[labels == 4].mean())
    assert len(sizes) > 3
    assert np.mean(means[12]) > np.mean(means[34]) > np.mean(means[56])


def test_demo_source_ingests_cleanly(tmp_path):
    src = write_demo_source(tmp_path / "src", 12, 3)
    store = StageStore(tmp_path / "real")
    summary = ingest_source(src, src / "masks", store, source_name="demo")
    recs = store.records()
    assert summary.done == 12 and not summary.rejected
    assert sorted(s for r in recs for s in r.source_ids) == [f"demo:{i:06d}" for i in range(1, 13)]
    r = recs[0]
    assert store.read_mask(r.sample_id).shape == store.read_image(r.sample_id).shape[:2]
    assert {x.disease for x in recs} >= {"nevus", "seborrheic keratosis"}
