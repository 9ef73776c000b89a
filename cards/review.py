"""The card's human-review section: what reviewers looked at and decided, reported like the paper
(candidates, reviewed, kept, discarded per criterion, reviewers, agreement as Cohen's kappa)."""
from __future__ import annotations

from cards.text import CardFacts

QUEUE_TEXT = {"masks": "automatic masks", "healthy": "healthy synthetics", "lesion_map": "lesion-mapped synthetics",
              "semantic": "semantic synthetics"}


def review(f: CardFacts) -> str:
    r = f.review
    if not r:
        return ""
    rows = "\n".join(_row(q, s) for q, s in r["queues"].items())
    pairs = [(q, a) for q, s in r["queues"].items() for a in s["agreement"]]
    agree = "\n".join(
        f"- {QUEUE_TEXT[q]}, {a['reviewers'][0]} vs {a['reviewers'][1]}: {a['items']} items decided by both, "
        f"{a['agreement']:.1%} agreement, Cohen's kappa "
        + (f"{a['kappa']:.2f}" if a["kappa"] is not None else "undefined (one decision only)")
        for q, a in pairs) or "- one reviewer per item: no agreement to report"
    who = ", ".join(r["reviewers"])
    return f"""## Human review

Reviewers ({len(r['reviewers'])}: {who}) looked at the build's images one by one before publication and
discarded those that failed a criterion: the paper's four (`lesion_remains`: the lesion is still
there; `unrealistic_texture`; `wrong_tone`: the skin tone is wrong; `artefact`: holes, eyes, odd
lighting), or `bad_mask` / `other`. An item is discarded when any reviewer's latest decision discards
it; a discarded image is not published, and nothing is derived from it (no lesion map on a discarded
healthy base, no LoRA class image; a photo whose automatic mask was discarded donates no lesion and
has no healthy version). Decisions: `{r['decisions_file']}` (sha256 `{r['decisions_sha256'][:16]}...`,
listed in manifest.json).

| queue | candidates | reviewed | kept | discarded | discarded by criterion | disagreements |
|---|---:|---:|---:|---:|---|---:|
{rows}

Agreement (keep vs discard):

{agree}"""


def _row(queue: str, s: dict) -> str:
    crit = ", ".join(f"{c} {n}" for c, n in s["discarded_by_criterion"].items()) or "-"
    return (f"| {QUEUE_TEXT[queue]} | {s['candidates']} | {s['reviewed']} | {s['kept']} | {s['discarded']} | "
            f"{crit} | {s['disagreements']} |")
