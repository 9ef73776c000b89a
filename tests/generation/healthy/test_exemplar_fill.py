"""The texture-copying CPU healthy fills (`exemplar`: membrane colour + nearby real skin texture; `quilt`, v1.2's:
the same from clean skin only) against v1.1's Telea + grain, on real Fitzpatrick17k photos: known skin is
hidden, filled, and compared with the truth."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from builder.core.config import HealthyConfig, load_config
from builder.core.errors import ConfigError
from generation.healthy.backends import OpenCVBackend
from generation.lesion_map.quality import fill_fidelity


@pytest.fixture(scope="module")
def bench(repo_root):
    spec = importlib.util.spec_from_file_location("fill_quality", repo_root / "benchmarks" / "fill_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fill_quality"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def photos(bench, shared_data):
    return bench.load(shared_data, 160)[::4]


@pytest.mark.parametrize("method", ["exemplar", "quilt"])
def test_texture_fills_beat_telea_grain_on_hidden_real_skin(bench, photos, method):
    assert load_config("1.1-notebook").healthy.opencv_method == "telea"
    wins, ratios, n = {"psnr": 0, "ssim": 0}, [], 0
    for k, (_, rgb, lm) in enumerate(photos):
        mask = bench.hide(lm, k)
        if mask is None:
            continue
        n += 1
        new = bench.fill(method, rgb, lm, mask, k)
        old = bench.fill("telea+grain", rgb, lm, mask, k)
        assert np.array_equal(new[~mask], rgb[~mask])  # only the hidden region is painted
        assert np.array_equal(new, bench.fill(method, rgb, lm, mask, k))  # deterministic
        a, b = fill_fidelity(new, rgb, mask), fill_fidelity(old, rgb, mask)
        wins["psnr"] += a["psnr"] > b["psnr"]
        wins["ssim"] += a["ssim"] > b["ssim"]
        ratios.append(a["texture_ratio"])
    assert n >= 8
    assert wins["psnr"] >= 0.8 * n and wins["ssim"] >= 0.8 * n, (wins, n)
    assert 0.5 < float(np.median(ratios)) < 2.0  # real skin texture: neither flat nor speckled


def test_opencv_method_is_checked():
    with pytest.raises(ConfigError, match="opencv_method"):
        OpenCVBackend(HealthyConfig(opencv_method="fsr"))
    assert OpenCVBackend(HealthyConfig()).params() == {"method": "telea", "radius": 5, "grain": 1.0}  # v1.1 ids unchanged
