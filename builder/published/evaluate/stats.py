"""Statistics of `builder evaluate`: Frechet distance, KID, AUROC, sensitivity at a specificity, bootstrap CIs.

Plain numpy / scipy / scikit-learn so each figure can be checked against a hand computation
(tests/test_evaluate_stats.py). Every random draw comes from a seeded `numpy.random.Generator`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def frechet_from_stats(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray,
                       eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)) (Dowson & Landau; the FID formula)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(cov1 @ cov2, disp=False)
    if not np.isfinite(covmean).all():
        # singular product (fewer images than feature dimensions): offset both diagonals, as pytorch-fid does
        offset = np.eye(cov1.shape[0]) * eps
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    covmean = np.real(covmean)
    return float(max(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean), 0.0))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows = images; arrays, or rows of a
    feature file read in chunks)."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    return frechet_from_stats(*_moments(a), *_moments(b))


def _moments(x) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(x, "moments"):  # featurefile.OnDisk: running sums over its file
        _, mean, cov = x.moments()
        return mean, cov
    x = _two_d(x)
    return x.mean(0), np.cov(x, rowvar=False)


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean over subsets.

    Subsets are drawn without replacement, of size min(subset_size, len(a), len(b)) (Binkowski et al. 2018).
    """
    a, b = (x if hasattr(x, "moments") else _two_d(x) for x in (a, b))  # rows on disk: only the drawn are read
    m = min(subset_size, len(a), len(b))
    if m < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(_two_d(a[rng.choice(len(a), m, replace=False)]),
                            _two_d(b[rng.choice(len(b), m, replace=False)]))
              for _ in range(subsets)]
    return float(np.mean(values))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-size samples with KID's cubic polynomial kernel."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def auroc(y_true: Sequence[int], score: Sequence[float]) -> float:
    """Area under the ROC curve; NaN when only one class is present (undefined, never guessed)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def sensitivity_at_specificity(y_true: Sequence[int], score: Sequence[float], specificity: float) -> float:
    """The highest true-positive rate among thresholds whose false-positive rate is <= 1 - specificity."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y_true)
    if len(np.unique(y)) < 2:
        return float("nan")
    fpr, tpr, _ = roc_curve(y, np.asarray(score, dtype=np.float64))
    ok = fpr <= (1.0 - specificity) + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def bootstrap_ci(stat: Callable[..., float], samples: Sequence[np.ndarray], n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float, int]:
    """Percentile bootstrap CI of `stat(*samples)`; each sample is resampled independently, with replacement.

    Resamples whose statistic is not finite (e.g. one class only) are dropped; returns (low, high,
    resamples used). Fewer than 10 usable resamples give (nan, nan, n). Distances between feature
    sets are biased upward at small n, and resampling (duplicated images) adds to it, so their
    interval can lie above the full-sample estimate: compare versions at equal n.
    """
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        drawn = [s[rng.integers(0, len(s), len(s))] for s in samples]
        v = stat(*drawn)
        if np.isfinite(v):
            values.append(v)
    if len(values) < 10:
        return float("nan"), float("nan"), len(values)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi), len(values)


def paired(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(y, score) as one array of rows, so a bootstrap resamples labels and scores together."""
    return np.stack([np.asarray(y, np.float64), np.asarray(s, np.float64)], axis=1)


def _two_d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def population_sd(values) -> float:
    """Standard deviation with divisor n (numpy's ddof=0), the spread across tones the paper reports;
    NaN when any value is missing."""
    if any(v is None for v in values):
        return float("nan")
    v = np.asarray(values, dtype=np.float64)
    return float(np.sqrt(((v - v.mean()) ** 2).mean())) if len(v) else float("nan")
