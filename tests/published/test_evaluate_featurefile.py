"""Feature sets on disk (builder.published.evaluate.featurefile): the statistics read in chunks equal the
in-memory ones (same draws, same formulas), so a large version's evaluation needs bounded memory."""
import numpy as np
import pytest

from builder.published.evaluate import featurefile as ff
from builder.published.evaluate import standard as sd
from builder.published.evaluate import stats as st


@pytest.fixture
def on_disk(tmp_path, monkeypatch):
    """Two feature sets written a batch at a time and read back as rows on disk, in chunks of 7 rows."""
    monkeypatch.setattr(ff, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(ff, "CHUNK_BYTES", 7 * 8 * 5)
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (60, 5)), rng.normal(0.5, 1.5, (45, 5))
    out = []
    for name, x in (("a", a), ("b", b)):
        ff.write(tmp_path / f"{name}.npy", (x[s:s + 16] for s in range(0, len(x), 16)), len(x))
        out.append(ff.load(tmp_path / f"{name}.npy"))
    return a, b, *out


def test_written_file_is_an_ordinary_npy_and_small_sets_load_into_memory(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    ff.write(tmp_path / "x.npy", [x[:3], x[3:]], 4)
    assert np.array_equal(np.load(tmp_path / "x.npy"), x)
    assert isinstance(ff.load(tmp_path / "x.npy"), np.ndarray)
    ff.write(tmp_path / "empty.npy", [], 0)
    assert np.load(tmp_path / "empty.npy").shape == (0, 1)
    with pytest.raises(ValueError, match="3 feature rows written, 4 expected"):
        ff.write(tmp_path / "short.npy", [x[:3]], 4)
    assert not (tmp_path / "short.npy").exists()


def test_rows_on_disk_select_like_an_array(on_disk):
    a, _, da, _ = on_disk
    assert isinstance(da, ff.OnDisk) and len(da) == 60 and da.shape == (60, 5)
    assert np.array_equal(np.asarray(da), a)  # a dense read: chunk by chunk
    idx = np.array([59, 3, 3, 0, 17])
    assert np.array_equal(np.asarray(da[idx]), a[idx])  # a sparse read: row by row, repeats kept
    assert np.array_equal(np.asarray(da[idx][[4, 0]]), a[idx][[4, 0]])  # a selection of a selection
    n, mean, cov = da[idx].moments()
    assert n == 5 and np.allclose(mean, a[idx].mean(0)) and np.allclose(cov, np.cov(a[idx], rowvar=False))


def test_frechet_fid_and_kid_on_disk_equal_the_in_memory_figures(on_disk):
    a, b, da, db = on_disk
    assert st.frechet_distance(da, db) == pytest.approx(st.frechet_distance(a, b), rel=1e-10)
    assert sd.fid(da, db) == pytest.approx(sd.fid(a, b), rel=1e-8)
    assert st.kid(da, db, subsets=5, subset_size=20, seed=2) == pytest.approx(
        st.kid(a, b, subsets=5, subset_size=20, seed=2), rel=1e-12)
    # torchmetrics' own draws (torch.randperm per subset) are replayed: the same subsets, the same figure
    assert sd.kid(da, db, subsets=4, subset_size=30, seed=1) == pytest.approx(
        sd.kid(a, b, subsets=4, subset_size=30, seed=1), rel=1e-12)
    assert sd.kid(da, db, seed=1) != sd.kid(da, db, seed=2)


def test_bootstrap_over_rows_on_disk_draws_the_same_resamples(on_disk):
    a, b, da, db = on_disk
    got = st.bootstrap_ci(st.frechet_distance, [da, db], 30, seed=4)
    want = st.bootstrap_ci(st.frechet_distance, [a, b], 30, seed=4)
    assert got[2] == want[2] == 30 and np.allclose(got[:2], want[:2], rtol=1e-10)
