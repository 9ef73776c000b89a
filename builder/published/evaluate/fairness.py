"""Fairness gaps of a classifier across skin-tone groups, as PatchAlign24 and FairDisCo report them,
and intervals across folds.

With groups g (skin tones) and classes c (benign, malignant), predictions yhat and labels y:

- **PQD** (predictive quality disparity) = min_g acc_g / max_g acc_g, acc_g the accuracy within group g.
- **DPM** (demographic parity, as a min/max ratio) = mean over classes c of
  min_g P(yhat = c | g) / max_g P(yhat = c | g): how evenly each class is predicted across groups.
- **EOM** (equal opportunity, as a min/max ratio) = mean over classes c of
  min_g P(yhat = c | y = c, g) / max_g P(yhat = c | y = c, g): how evenly each class's true-positive rate
  is spread across groups.

All three are 1 when every group is served alike and fall towards 0 as one group is served worse.
A class absent from a group (no rows, or no rows of that class for EOM) leaves that group out of that
class's ratio; a ratio whose largest rate is 0 counts as 1 (no group predicts the class: no disparity).
"""
from __future__ import annotations

import numpy as np


def _ratio(rates: list[float]) -> float:
    rates = [r for r in rates if np.isfinite(r)]
    if not rates:
        return float("nan")
    hi = max(rates)
    return 1.0 if hi == 0 else min(rates) / hi


def pqd(y, pred, group) -> float:
    y, pred, group = map(np.asarray, (y, pred, group))
    return _ratio([float((pred[group == g] == y[group == g]).mean()) for g in np.unique(group)])


def dpm(pred, group, classes=(0, 1)) -> float:
    pred, group = np.asarray(pred), np.asarray(group)
    return float(np.nanmean([_ratio([float((pred[group == g] == c).mean()) for g in np.unique(group)])
                             for c in classes]))


def eom(y, pred, group, classes=(0, 1)) -> float:
    y, pred, group = map(np.asarray, (y, pred, group))
    per_class = []
    for c in classes:
        rates = [float((pred[(group == g) & (y == c)] == c).mean()) for g in np.unique(group)
                 if ((group == g) & (y == c)).any()]
        per_class.append(_ratio(rates))
    return float(np.nanmean(per_class))


def across_folds(values) -> dict:
    """Mean, sample SD (divisor n - 1) and a 95% t interval (Student's t, n - 1 degrees of freedom) across
    folds; None entries (an undefined fold) are left out and counted."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    out = {"n_folds": int(len(v)), "mean": None, "sd": None, "ci": [None, None]}
    if len(v) == 0:
        return out
    out["mean"] = round(float(v.mean()), 4)
    if len(v) >= 2:
        sd = float(v.std(ddof=1))
        half = float(stats.t.ppf(0.975, len(v) - 1)) * sd / np.sqrt(len(v))
        out.update(sd=round(sd, 4), ci=[round(float(v.mean() - half), 4), round(float(v.mean() + half), 4)])
    return out
