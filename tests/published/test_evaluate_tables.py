"""The paper's tables in `builder evaluate`: imbalance (S4), standard FID/KID/LPIPS (S6), augmentations (S8)."""
from pathlib import Path

import numpy as np
import pytest

from builder.published.evaluate.balance import imbalance
from builder.core.schema import digest
from builder.published.evaluate.run import Item


def _item(n, kind, tone, sources):
    return Item(f"{kind}-{n:03d}", kind, "train", tone, 0, b"", source_ids=tuple(sources))


def test_imbalance_counts_rows_sources_and_the_ratio_by_hand():
    items = ([_item(n, "real", "light", [f"r{n}"]) for n in range(4)]
             + [_item(n, "real", "dark", [f"r{10 + n}"]) for n in range(5)]
             + [_item(n, "real", "medium", [f"r{20 + n}"]) for n in range(6)]
             # lesion maps: base + donor; two rows share base r0, one donor repeats
             + [_item(0, "lesion_mapped", "light", ["r0", "r10"]), _item(1, "lesion_mapped", "light", ["r0", "r11"]),
                _item(2, "lesion_mapped", "medium", ["r20", "r10"]), _item(3, "lesion_mapped", "dark", ["r12", "r10"]),
                _item(4, "lesion_mapped", "dark", ["r13", "r0"]), _item(5, "lesion_mapped", "dark", ["r14", "r1"])])
    res = imbalance(items)
    assert list(res) == ["real", "lesion_mapped"]
    assert [res["real"][t]["rows"] for t in ("light", "medium", "dark")] == [4, 6, 5]
    assert res["real"]["ratio"] == pytest.approx(6 / 4)
    lm = res["lesion_mapped"]
    assert [lm[t]["rows"] for t in ("light", "medium", "dark")] == [2, 1, 3]
    # light {r0, r10, r11}; medium {r20, r10}; dark {r12, r10, r13, r0, r14, r1}
    assert [lm[t]["sources"] for t in ("light", "medium", "dark")] == [3, 2, 6]
    assert lm["total"] == {"rows": 6, "sources": 8}  # r0 r1 r10 r11 r12 r13 r14 r20
    assert lm["ratio"] == pytest.approx(3.0)


def test_imbalance_ratio_is_undefined_when_a_tone_is_empty():
    res = imbalance([_item(0, "healthy", "light", ["a"]), _item(1, "healthy", "medium", ["b"])])
    assert res["healthy"]["dark"] == {"rows": 0, "sources": 0}
    assert res["healthy"]["ratio"] is None


# -- S6: the spread, FID and KID through torchmetrics ------------------------------------------------
def test_population_sd_by_hand_and_reproduces_the_papers_spread():
    from builder.published.evaluate.paper_figures import FIDELITY
    from builder.published.evaluate.stats import population_sd

    # 2, 4, 9: mean 5, squared deviations 9, 1, 16 -> 26 / 3 (divisor n, not n - 1)
    assert population_sd([2, 4, 9]) == pytest.approx((26 / 3) ** 0.5)
    assert np.isnan(population_sd([2, None, 9]))
    for kind in FIDELITY.values():  # the paper's SD column is this statistic of its per-tone FIDs
        fid = kind["fid"]
        assert population_sd([fid[t] for t in ("light", "medium", "dark")]) == pytest.approx(fid["sd"], abs=0.006)


def test_torchmetrics_fid_and_kid_match_the_hand_checked_formulas():
    from builder.published.evaluate import standard as sd
    from builder.published.evaluate import stats as st

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 5)), rng.normal(0.5, 2.0, size=(80, 5))
    assert sd.fid(a, b) == pytest.approx(st.frechet_distance(a, b), rel=1e-6)
    assert sd.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    assert np.isnan(sd.fid(a[:1], b))
    # one subset holding every row of equal-size sets: KID is the unbiased MMD^2 of the whole sets
    assert sd.kid(a, b[:60], subsets=1, subset_size=60) == pytest.approx(st.mmd2_unbiased(a, b[:60]), rel=1e-6)
    assert sd.kid(a, b, seed=3) == sd.kid(a, b, seed=3)


def _png_items(n, seed, sizes=((40, 40), (48, 36))):
    from builder.core.store import encode_png

    rng = np.random.default_rng(seed)
    return [Item(f"x{seed}-{k:02d}", "real", "train", ("light", "medium", "dark")[k % 3], k % 2,
                 encode_png(rng.integers(0, 255, (*sizes[k % len(sizes)], 3), dtype=np.uint8)),
                 source_ids=(f"x{seed}-{k:02d}",)) for k in range(n)]


def tiny_extractor():
    """A random-weight CNN standing in for Inception-v3 in tests (and named so)."""
    import torch

    from builder.published.evaluate.standard import Extractor

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 6, 5, stride=4)

        def forward(self, x):
            x = torch.nn.functional.interpolate(x.float(), size=(32, 32), mode="bilinear")
            return torch.relu(self.conv(x)).mean((2, 3))

    return Extractor("tiny random CNN (test network, not Inception-v3)", {"net": "tiny-test"}, Tiny())


def test_fid_of_identical_image_sets_is_zero_through_the_feature_code_path(tmp_path):
    from builder.published.evaluate import standard as sd

    ext = tiny_extractor()
    items, other = _png_items(12, 0), _png_items(12, 1)
    f = sd.standard_features(items, ext, tmp_path, "cpu")
    assert f.shape == (12, 6)
    assert sd.fid(f, sd.standard_features(list(items), ext, tmp_path, "cpu")) == pytest.approx(0.0, abs=1e-6)
    assert sd.fid(f, sd.standard_features(other, ext, tmp_path, "cpu")) > 1e-3
    # images of two sizes are batched by size; each row is the image's own features, in order
    alone = np.concatenate([sd.standard_features([i], ext, tmp_path / "one", "cpu") for i in items[:3]])
    assert np.allclose(alone, f[:3])


def test_standard_networks_report_why_they_cannot_run(monkeypatch, tmp_path):
    import sys

    from builder.core.errors import ConfigError
    from builder.published.evaluate import standard as sd

    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as on a machine without it
    monkeypatch.setitem(sys.modules, "torchvision", None)
    assert "torch-fidelity" in sd.load_inception(None, "cpu")
    assert "torchvision" in sd.load_lpips(None, "cpu")
    wrong = tmp_path / "weights.pth"
    wrong.write_bytes(b"not the weights")
    with pytest.raises(ConfigError, match=r"--inception-weights .*sha256 .* is not the standard"):
        sd.check_weights(str(wrong), sd.INCEPTION_SHA256_PREFIX, "--inception-weights", "Inception-v3 FID")
    with pytest.raises(ConfigError, match="no such file"):
        sd.check_weights(str(tmp_path / "nothing.pth"), sd.ALEXNET_SHA256_PREFIX, "--lpips-weights", "AlexNet")


def test_lpips_pairs_each_image_with_a_real_photo_of_its_tone(tmp_path):
    import torch

    from builder.published.evaluate import standard as sd

    real, synth = _png_items(6, 2), _png_items(5, 3)
    real = [r for r in real if r.tone != "dark"]  # no dark real photo: dark rows get no pair
    pairs = sd.pair_with_real(synth, real, seed=0)
    assert all(r is None if s.tone == "dark" else r.tone == s.tone for s, r in pairs)
    assert [r.sample_id if r else None for _, r in pairs] == \
        [r.sample_id if r else None for _, r in sd.pair_with_real(synth, real, seed=0)]

    class MeanAbs(torch.nn.Module):  # stands in for LPIPS: mean absolute difference of the pair
        def forward(self, a, b):
            return (a - b).abs().mean((1, 2, 3))

    got = sd.lpips_values(synth, real, MeanAbs(), {"net": "meanabs"}, tmp_path, "cpu", seed=0)
    for (s, r), v in zip(pairs, got):
        if r is None:
            assert np.isnan(v)
        else:
            assert v == pytest.approx(float((sd._square([s]) - sd._square([r])).abs().mean()), rel=1e-6)


def test_lpips_of_a_known_pair_where_torchvision_runs():
    pytest.importorskip("torchvision")
    import torch
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    try:
        net = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="none", normalize=True)
    except OSError:
        pytest.skip("AlexNet weights cannot be downloaded here")
    a = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    same, other = net(a, a.clone()), net(a, 1 - a)
    assert torch.allclose(same, torch.zeros(2), atol=1e-6) and (other > 0.1).all()


# -- S8: augmentations -------------------------------------------------------------------------------
def test_augmentations_are_seeded_keep_the_size_and_change_the_pixels():
    import io

    from PIL import Image

    from builder.published.evaluate.augment import AUGMENTATIONS, augmented

    items = _png_items(3, 4)
    for name in AUGMENTATIONS:
        a, b = augmented(items, name, seed=0), augmented(items, name, seed=0)
        assert [x.data for x in a] == [x.data for x in b]
        for src, out in zip(items, a):
            x = np.asarray(Image.open(io.BytesIO(out.data)).convert("RGB")).astype(int)
            y = np.asarray(Image.open(io.BytesIO(src.data)).convert("RGB")).astype(int)
            assert x.shape == y.shape and out.tone == src.tone
            assert (np.abs(x - y).mean() == 0) == (name == "duplication"), name


def test_a_versions_images_are_spilled_to_the_cache_and_read_back_as_they_were(demo_v11, tmp_path):
    """Bounded memory: with a spill folder the items hold file names, not bytes; `data` reads the same bytes."""
    from builder.published.evaluate.run import version_items

    folder = demo_v11.out_dir
    in_memory = version_items(folder)
    spilled = version_items(folder, spill=tmp_path)
    assert [i.sample_id for i in spilled] == [i.sample_id for i in in_memory]
    assert all(isinstance(i.blob, str) and Path(i.blob).parent == tmp_path for i in spilled)
    assert all(a.data == b.data for a, b in zip(spilled, in_memory))
    assert all(a.sha == digest(b.data) == a.data_digest() for a, b in zip(spilled, in_memory))  # keys: no re-read
    assert len(list(tmp_path.iterdir())) == len({i.blob for i in spilled})  # one file per distinct image
