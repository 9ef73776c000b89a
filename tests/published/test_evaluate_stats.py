"""`builder evaluate`'s statistics against hand computations (Frechet on known Gaussians, AUROC, KID, CIs)."""
import itertools
import math

import numpy as np
import pytest

from builder.published.evaluate import stats as st


def test_frechet_from_stats_matches_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    # diagonal covariances commute: Tr(C1 + C2 - 2 sqrt(C1 C2)) = sum (s1 - s2)^2
    hand = float(((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum())  # 1 + 0 + 4 + 4 + 0 + 1 = 10
    assert hand == 10.0
    got = st.frechet_from_stats(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2))
    assert got == pytest.approx(hand, abs=1e-9)


def test_frechet_of_a_gaussian_with_itself_is_zero_and_symmetric():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    assert st.frechet_from_stats(np.zeros(2), cov, np.zeros(2), cov) == pytest.approx(0.0, abs=1e-9)
    c2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    a = st.frechet_from_stats(np.ones(2), cov, np.zeros(2), c2)
    b = st.frechet_from_stats(np.zeros(2), c2, np.ones(2), cov)
    assert a == pytest.approx(b, rel=1e-9)


def test_frechet_distance_of_samples_approaches_the_population_value():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 0], [1, 1], size=(20000, 2))
    b = rng.normal([2, 0], [1, 3], size=(20000, 2))
    assert st.frechet_distance(a, b) == pytest.approx(4 + 4, rel=0.03)  # (2-0)^2 + (3-1)^2
    assert math.isnan(st.frechet_distance(a[:1], b))


def test_mmd2_unbiased_matches_a_hand_double_loop():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 3)), rng.normal(1, 1, size=(5, 3))

    def k(u, v):
        return (u @ v / 3 + 1) ** 3

    m = 5
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert st.mmd2_unbiased(x, y) == pytest.approx(sxx + syy - 2 * sxy, rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(2)
    a, b, c = rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng.normal(1.0, 1, size=(400, 8))
    same, other = st.kid(a, b, subset_size=200), st.kid(a, c, subset_size=200)
    assert abs(same) < 0.05 * other
    assert other > 0
    assert st.kid(a, c, seed=3) == st.kid(a, c, seed=3)  # seeded subsets


def test_auroc_matches_mann_whitney_by_hand_with_ties():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4]
    pos = [si for yi, si in zip(y, s) if yi]
    neg = [si for yi, si in zip(y, s) if not yi]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert st.auroc(y, s) == pytest.approx(wins / (len(pos) * len(neg)))  # 6/9
    assert math.isnan(st.auroc([1, 1], [0.2, 0.3]))


def test_sensitivity_at_specificity_by_hand():
    # negatives' scores 0.1..0.9 (9 negatives + 1 at 0.95); positives 0.5, 0.92, 0.97
    neg = [0.1 * i for i in range(1, 10)] + [0.95]
    pos = [0.5, 0.92, 0.97]
    y, s = [0] * len(neg) + [1] * len(pos), neg + pos
    # specificity 0.9 allows 1 false positive of 10: threshold just above 0.9 keeps 0.95 (FP) and
    # catches 0.92 and 0.97 -> sensitivity 2/3
    assert st.sensitivity_at_specificity(y, s, 0.9) == pytest.approx(2 / 3)
    # specificity 1.0: only 0.97 is above every negative -> 1/3
    assert st.sensitivity_at_specificity(y, s, 1.0) == pytest.approx(1 / 3)


def test_bootstrap_ci_of_a_mean_matches_the_normal_approximation_and_a_hand_loop():
    rng = np.random.default_rng(4)
    x = rng.normal(10, 2, size=2000)
    lo, hi, used = st.bootstrap_ci(np.mean, [x], n_boot=2000, seed=5)
    half = 1.96 * 2 / math.sqrt(len(x))
    assert used == 2000
    assert lo == pytest.approx(x.mean() - half, abs=0.25 * half)
    assert hi == pytest.approx(x.mean() + half, abs=0.25 * half)
    # the same draws by hand
    r = np.random.default_rng(5)
    means = [x[r.integers(0, len(x), len(x))].mean() for _ in range(2000)]
    assert (lo, hi) == tuple(np.percentile(means, [2.5, 97.5]))


def test_bootstrap_drops_undefined_resamples():
    y = np.array([0] * 19 + [1])
    rows = st.paired(y, np.linspace(0, 1, 20))
    lo, hi, used = st.bootstrap_ci(lambda r: st.auroc(r[:, 0], r[:, 1]), [rows], n_boot=200, seed=0)
    assert 0 < used < 200  # resamples without the one positive are undefined and dropped
    assert lo <= hi
