"""The card's three paper tables (imbalance, fidelity per tone, augmentation baselines), each measured
figure beside the paper's figure for the same cell, from `evaluation.json`.

A measure that could not run is printed as "not computed" with its reason; a paper figure the paper
does not give is printed as "-".
"""
from __future__ import annotations

from builder.core.schema import SKIN_TONES

GROUPS = SKIN_TONES + ("overall",)
NOT = "not computed"


def _n(v, digits: int) -> str:
    """`digits` decimals; below 1 in the last of them, 2 significant figures (a small figure never reads as 0)."""
    return f"{v:.2g}" if v != 0 and abs(v) < 10 ** -digits else f"{v:.{digits}f}"


def _f(v, digits: int = 2, ci=None) -> str:
    if v is None:
        return "n/a"
    if ci and ci[0] is not None:
        return f"{_n(v, digits)} [{_n(ci[0], digits)}, {_n(ci[1], digits)}]"
    return _n(v, digits)


def _p(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}" if isinstance(v, float) else f"{v:,}"


def imbalance_lines(result: dict) -> list[str]:
    imb, paper = result.get("imbalance"), result.get("paper", {}).get("imbalance", {})
    if not imb:
        return []
    lines = ["", "**Balance across skin tones** (the paper's S4): rows per tone, with the distinct real photos "
             "behind them in brackets, and the imbalance ratio (largest tone count / smallest).", "",
             "| kind | light | medium | dark | ratio | paper: light / medium / dark | paper ratio |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for kind, cells in imb.items():
        p = paper.get(kind, {})
        counts = " / ".join(_p(p.get(t)) for t in SKIN_TONES) if any(p.get(t) for t in SKIN_TONES) else "-"
        lines.append(f"| {kind} | " + " | ".join(f"{cells[t]['rows']:,} ({cells[t]['sources']:,})" for t in SKIN_TONES)
                     + f" | {_f(cells['ratio'])} | {counts} | {_p(p.get('ratio'))} |")
    lines += ["", "What differs: the paper counts its whole release (DDI's 656 photos and every image made from "
              "them); this version's counts follow its configuration, and its real photos are those given a split."]
    return lines


def _status_line(name: str, status: dict) -> str:
    if status.get("not_computed"):
        return f"{name}: {NOT}: {status['not_computed']}."
    return f"{name}: `{status['network']}`."


def standard_lines(result: dict) -> list[str]:
    s6, paper = result.get("standard_fidelity"), result.get("paper", {})
    if not s6:
        return []
    fid_ok, lp_ok = not s6["fid"].get("not_computed"), not s6["lpips"].get("not_computed")
    model = result["models"]["features"]["id"]
    lines = ["", "**Fidelity per skin tone** (the paper's S6): each synthetic kind against the real photos of the "
             "same tone, with bootstrap 95% CIs; the spread row is the population SD across the three tones. "
             + _status_line("FID and KID network", s6["fid"]) + " " + _status_line("LPIPS", s6["lpips"])
             + " LPIPS pairs each synthetic image with a real photo of its tone drawn at random (seeded). The last "
             f"column is the Frechet distance in `{model}`'s feature space (not FID).", "",
             "| kind | tone | real / synthetic | FID | paper FID | KID | paper KID | LPIPS | paper LPIPS | "
             "feature-space Frechet |", "|---|---|---:|---|---:|---|---:|---|---:|---|"]
    for kind, cells in s6["cells"].items():
        pk = paper.get("fidelity", {}).get(kind, {})
        model_cells = result.get("fidelity", {}).get(kind, {})
        for g in GROUPS:
            c, m = cells[g], model_cells.get(g, {})
            paper_fid = pk.get("fid", {}).get(g) if g != "overall" else paper.get("transformative", {}).get(kind)
            lines.append(
                f"| {kind} | {g} | {c['n_real']} / {c['n_synthetic']} | "
                f"{_f(c.get('fid'), 2, c.get('fid_ci')) if fid_ok else NOT} | {_p(paper_fid)}"
                f"{' (S8)' if g == 'overall' and paper_fid is not None else ''} | "
                f"{_f(c.get('kid'), 4, c.get('kid_ci')) if fid_ok else NOT} | {_p(pk.get('kid', {}).get(g), 3)} | "
                f"{_f(c.get('lpips'), 3, c.get('lpips_ci')) if lp_ok else NOT} | {_p(pk.get('lpips', {}).get(g), 3)} | "
                f"{_f(m.get('frechet'), 3, m.get('frechet_ci'))} |")
        sp = s6["spread"][kind]
        lines.append(f"| {kind} | spread (SD) | | {_f(sp['fid']) if fid_ok else NOT} | "
                     f"{_p(pk.get('fid', {}).get('sd'))} "
                     f"| {_f(sp['kid'], 4) if fid_ok else NOT} | - | {_f(sp['lpips'], 3) if lp_ok else NOT} | - | |")
    lines += ["", "What differs: " + _feature_space(s6["fid"]) + " the paper measured its whole release "
              "(tens of thousands of images a cell) and FID is biased upward at small n, so figures compare only "
              "at similar n; images enter at their own resolution (synthetic images at the version's size, real "
              "photos at theirs) and the network resizes both."]
    return lines


def _feature_space(status: dict, what: str = "FID and KID were") -> str:
    if status.get("not_computed"):
        return f"{what} not computed here, so only the feature-space column and the paper's figures are shown;"
    if status["network"].startswith("Inception-v3"):
        return "the network is the paper's (Inception-v3), so the scale is the same;"
    return f"the network is `{status['network']}`, not Inception-v3, so its figures are not on the paper's scale;"


def transformative_lines(result: dict) -> list[str]:
    s8, paper = result.get("transformative"), result.get("paper", {}).get("transformative", {})
    if not s8:
        return []
    fid_ok = not s8["fid"].get("not_computed")
    model = result["models"]["features"]["id"]
    lines = ["", "**Augmentations of the real photos beside the synthetic kinds** (the paper's S8, \"transformative "
             "use\"): the distance of each set to all real photos. Augmentations by albumentations, each photo "
             "augmented once with a seed of its own; parameters in the table. "
             + _status_line("FID network", s8["fid"]), "",
             f"| set | parameters | images | FID | paper FID | Frechet in `{model}` |", "|---|---|---:|---|---:|---|"]
    for name, r in s8["augmentations"].items():
        lines.append(f"| {name} | {r['params']} | {r['n']} | {_f(r['fid']) if fid_ok else NOT} | "
                     f"{_p(paper.get(name), 1)} | {_f(r['model_frechet'], 3)} |")
    counts = result.get("counts", {}).get("synthetic", {})
    for kind, r in s8["synthetic"].items():
        lines.append(f"| {kind} (this version) | - | {counts.get(kind, '')} | {_f(r['fid']) if fid_ok else NOT} | "
                     f"{_p(paper.get(kind), 1)} | {_f(r['model_frechet'], 3)} |")
    lines += ["", "What differs: " + _feature_space(s8["fid"], "FID was") + " the paper does not state its "
              "augmentation strengths (these are the table's), and its real set is DDI's 656 photos where this "
              "one is the version's real photos."]
    return lines


def protocol_lines(result: dict) -> list[str]:
    pr = result.get("protocol")
    if not pr:
        return []
    s = pr["settings"]
    b = pr["backbone"]
    lines = ["", f"**Classifier protocol** (as PatchAlign24 trains): `{b['id']}` at `{b['revision']}` with a linear "
             f"head, Adam {s['lr']:g}, the rate x{s['gamma']:g} every {s['step_epochs']} epochs, "
             f"batch {s['batch_size']}, "
             f"{s['epochs']} epochs, then {s['finetune_epochs']} at {s['finetune_lr']:g}; real photos split "
             f"{1 - s['test_size']:.0%} / {s['test_size']:.0%} with seeds {', '.join(map(str, s['seeds']))}; synthetic "
             "rows made from a fold's test photos are left out of its training. Mean across folds, SD, and a 95% t "
             "interval; tested on the fold's real test photos. PQD = worst tone's accuracy / best tone's; DPM and "
             "EOM = worst / best tone's rate of predicting each class (all rows / rows of that class), averaged "
             "over the two classes: 1 is parity.", "",
             "| training set | accuracy | AUROC light | AUROC medium | AUROC dark | AUROC | PQD | DPM | EOM |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, summary in pr["summary"].items():
        cells = []
        for m in ("accuracy", "auroc_light", "auroc_medium", "auroc_dark", "auroc", "pqd", "dpm", "eom"):
            r = summary[m]
            cells.append("n/a" if r["mean"] is None else
                         f"{r['mean']:.3f}" + (f" ± {r['sd']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]"
                                               if r["sd"] is not None else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
