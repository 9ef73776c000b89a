"""The paper's fidelity tables for a version: S6 (FID, KID, LPIPS per kind x tone, the population SD
across tones) and S8 (the same FID for augmentations of the real photos, beside each synthetic kind).

Each synthetic kind is compared with the real photos of the same tone ("overall": all tones). A measure
whose network cannot run here is recorded as not computed, with the reason, and never replaced by another
network's figure; a test network passed in is named as what it is.
"""
from __future__ import annotations

import numpy as np

from builder.core.schema import SKIN_TONES
from builder.published.evaluate import standard as sd
from builder.published.evaluate import stats as st

GROUPS = SKIN_TONES + ("overall",)


def _groups(items) -> dict[str, np.ndarray]:
    tones = np.array([SKIN_TONES.index(i.tone) for i in items], dtype=np.int8)
    idx = {g: np.flatnonzero(tones == n) for n, g in enumerate(SKIN_TONES)}
    idx["overall"] = np.arange(len(items))
    return idx


def _num(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4) + 0.0


def _ci(t) -> list:
    return [_num(t[0]), _num(t[1])]


def standard_fidelity(real, synth, settings, cache, device, extractor, lpips) -> dict:
    """S6 for every synthetic kind present. `extractor`: an `Extractor` or the reason FID/KID cannot run;
    `lpips`: (module, identity) or the reason LPIPS cannot run."""
    out = {"fid": _status(extractor), "lpips": _status(lpips, sd.LPIPS), "cells": {}, "spread": {}}
    f_real = sd.standard_features(real, extractor, cache, device) if isinstance(extractor, sd.Extractor) else None
    boot = max(20, settings.n_boot // 5)  # an FID per resample costs an eigen-decomposition
    for kind in sorted({i.kind for i in synth}):
        mine = [i for i in synth if i.kind == kind]
        f_syn = sd.standard_features(mine, extractor, cache, device) if f_real is not None else None
        lp = (sd.lpips_values(mine, real, lpips[0], lpips[1], cache, device, settings.seed)
              if isinstance(lpips, tuple) else None)
        gr, gs = _groups(real), _groups(mine)
        cells = {}
        for g in GROUPS:
            cell = {"n_real": len(gr[g]), "n_synthetic": len(gs[g])}
            if f_real is not None:
                cell.update(_fid_kid(f_real[gr[g]], f_syn[gs[g]], settings, boot))
            if lp is not None:
                vals = lp[gs[g]][np.isfinite(lp[gs[g]])]
                cell["lpips"] = _num(vals.mean()) if len(vals) else None
                cell["lpips_ci"] = _ci(st.bootstrap_ci(np.mean, [vals], settings.n_boot, settings.seed))
            cells[g] = cell
        out["cells"][kind] = cells
        out["spread"][kind] = {m: _num(st.population_sd([cells[t].get(m) for t in SKIN_TONES]))
                               for m in ("fid", "kid", "lpips")}
    return out


def _fid_kid(a: np.ndarray, b: np.ndarray, settings, boot: int) -> dict:
    def kid(x, y):
        return sd.kid(x, y, subsets=10, subset_size=settings.kid_subset, seed=settings.seed)

    return {"fid": _num(sd.fid(a, b)), "fid_ci": _ci(st.bootstrap_ci(sd.fid, [a, b], boot, settings.seed)),
            "kid": _num(kid(a, b)), "kid_ci": _ci(st.bootstrap_ci(kid, [a, b], boot, settings.seed))}


def _status(loaded, name: str | None = None) -> dict:
    if isinstance(loaded, str):
        return {"network": None, "not_computed": loaded}
    if isinstance(loaded, sd.Extractor):
        return {"network": loaded.name, "ident": loaded.ident, "not_computed": None}
    return {"network": name, "ident": loaded[1], "not_computed": None}


def transformative(real, settings, cache, device, extractor, model_features, standard: dict, model: dict) -> dict:
    """S8: FID (and the --model feature-space Frechet distance) between the real photos and each augmentation
    of them, beside each synthetic kind's overall figures from `standard` (S6) and `model` (fidelity)."""
    from builder.core.progress import progress
    from builder.published.evaluate.augment import AUGMENTATIONS, augmented

    f_real = sd.standard_features(real, extractor, cache, device) if isinstance(extractor, sd.Extractor) else None
    m_real = model_features(real)
    rows = {}
    for name in progress(AUGMENTATIONS, desc="augmentations", unit="set"):
        aug = augmented(real, name, settings.seed)  # one set in memory at a time
        rows[name] = {"params": AUGMENTATIONS[name], "n": len(aug),
                      "fid": _num(sd.fid(f_real, sd.standard_features(aug, extractor, cache, device)))
                      if f_real is not None else None,
                      "model_frechet": _num(st.frechet_distance(m_real, model_features(aug)))}
    synthetic = {kind: {"fid": cells["overall"].get("fid"),
                        "model_frechet": model.get(kind, {}).get("overall", {}).get("frechet")}
                 for kind, cells in standard["cells"].items()}
    return {"augmentations": rows, "synthetic": synthetic, "fid": standard["fid"]}
