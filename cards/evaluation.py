"""The card's evaluation section and figure, from `evaluation.json` (written by `builder evaluate`).

The section sits between two HTML comments, so a rerun replaces it instead of adding another.
"""
from __future__ import annotations

import io
from pathlib import Path

from builder.core.schema import SKIN_TONES
from builder.core.store import atomic_write
from cards.evaluation_tables import imbalance_lines, protocol_lines, standard_lines, transformative_lines

BEGIN, END = "<!-- cgddi:evaluation -->", "<!-- /cgddi:evaluation -->"
GROUPS = SKIN_TONES + ("overall",)
PLOT = "plots/evaluation.png"


def _fmt(v, ci=None) -> str:
    if v is None:
        return "n/a"
    if ci and ci[0] is not None:
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{v:.3f}"


def section(result: dict, plot: str | None = PLOT) -> str:
    """Markdown: what was measured, with which models, and the two tables."""
    m, s, u = result["models"], result["settings"], result["utility"]
    lines = [BEGIN, "## Evaluation", "",
             "Measured by `python -m builder evaluate` on this version (figures with bootstrap 95% CIs; "
             "n/a where a group has too few images or one class only; percentile bootstrap CIs; "
             "distances are biased upward at small n and their resamples more so, so a distance's interval can lie "
             "above its estimate: compare versions at equal n; KID is unbiased and can be slightly negative). "
             "Feature model "
             f"`{m['features']['id']}` at `{m['features']['revision']}`; classifier backbone "
             f"`{m['classifier']['id']}` at `{m['classifier']['revision']}`, {s['steps']} steps, seed {s['seed']}.",
             *imbalance_lines(result), *standard_lines(result), *transformative_lines(result),
             "", "**Fidelity in the feature model's space** (Frechet distance and KID between real and synthetic "
             "images in that model's features, not Inception's; lower is closer).", "",
             "| kind | group | real | synthetic | Frechet | KID |", "|---|---|---:|---:|---|---|"]
    for kind, groups in result["fidelity"].items():
        for g in GROUPS:
            r = groups[g]
            lines.append(f"| {kind} | {g} | {r['n_real']} | {r['n_synthetic']} | "
                         f"{_fmt(r['frechet'], r['frechet_ci'])} | {_fmt(r['kid'], r['kid_ci'])} |")
    lines += ["", f"**Utility**: malignancy ROC-AUC on the real test split ({u['n_test']} images), trained on "
              f"real train images alone ({u['n_train']['real']}) and with this version's train synthetics "
              f"({u['n_train']['real+synthetic']}); sensitivity at specificity {s['specificity']}.", "",
              "| training set | group | test (malignant) | ROC-AUC | sensitivity |", "|---|---|---:|---|---:|"]
    for label in ("real", "real+synthetic"):
        for g in GROUPS:
            r = u[label][g]
            lines.append(f"| {label} | {g} | {r['n_test']} ({r['n_malignant']}) | {_fmt(r['auroc'], r['auroc_ci'])}"
                         f" | {_fmt(r['sensitivity'])} |")
        lines.append(f"| {label} | best - worst tone gap | | {_fmt(u[label]['gap'])} | |")
    lines += protocol_lines(result)
    clip = result.get("clip_agreement")
    if clip:
        c = m["clip"]
        lines += ["", f"**Prompt agreement** of semantic rows: cosine between each image and its prompt in "
                  f"`{c['id']}` at `{c['revision']}`, against the same images with another row's prompt.", "",
                  "| group | images | own prompt | another prompt |", "|---|---:|---|---|"]
        for g in GROUPS:
            r = clip[g]
            lines.append(f"| {g} | {r['n']} | {_fmt(r['cosine'], r['cosine_ci'])} | {_fmt(r['other_prompt_cosine'])} |")
    if plot:
        lines += ["", f"![ROC-AUC per skin tone]({plot})"]
    lines += ["", END]
    return "\n".join(lines)


def write_card_section(card: Path, result: dict, plot: str | None = PLOT) -> None:
    """Insert (or replace) the section in README.md, before the terms of use when the card has them."""
    text = card.read_text()
    new = section(result, plot)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        marker = "\n## Terms"
        at = text.find(marker)
        text = (text.rstrip("\n") + "\n\n" + new + "\n") if at < 0 else text[:at] + "\n" + new + "\n" + text[at:]
    atomic_write(card, text.encode())


def write_plot(folder: Path, result: dict) -> str:
    """ROC-AUC per tone group, real vs real + synthetic, with CI whiskers (deterministic PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    u = result["utility"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(GROUPS))
    for k, (label, color) in enumerate((("real", "#888888"), ("real+synthetic", "#c68642"))):
        vals = [u[label][g]["auroc"] for g in GROUPS]
        ci = [u[label][g]["auroc_ci"] for g in GROUPS]
        h = [v if v is not None else 0 for v in vals]
        err = np.array([[v - c[0] if v is not None and c[0] is not None else 0 for v, c in zip(vals, ci)],
                        [c[1] - v if v is not None and c[1] is not None else 0 for v, c in zip(vals, ci)]])
        ax.bar(x + (k - 0.5) * 0.38, h, 0.38, yerr=err, capsize=3, color=color, label=label)
        for xi, v in zip(x, vals):  # the value on every bar: an AUROC of 0 must not read as "no bar"
            ax.text(xi + (k - 0.5) * 0.38, 0.02, "n/a" if v is None else f"{v:.2f}", ha="center", fontsize=7)
    ax.axhline(0.5, color="black", lw=0.6, ls=":")
    n = [u["real"][g]["n_test"] for g in GROUPS]
    ax.set_xticks(x, [f"{g}\n(n={k})" for g, k in zip(GROUPS, n)])
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("malignancy ROC-AUC (95% CI)")
    ax.set_title(f"cgDDI v{result['version']}: real test split, per skin tone")
    ax.legend(loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    atomic_write(folder / PLOT, buf.getvalue())
    return PLOT
