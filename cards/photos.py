"""The card's account of how many distinct source photos stand behind each skin tone and split.

Row counts can look balanced while resting on a handful of photos (a lesion-mapped row repeats its
base and its donor; one photo can feed dozens of rows). So the card counts, per split x tone, the
distinct source photos named in the rows' `source_ids`, gives each kind's tone imbalance (largest
over smallest row count across tones), and warns in plain words when a tone or a split rests on
fewer than `FEW_PHOTOS` photos, or holds no row of a tone at all.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from builder.core.schema import KINDS, SKIN_TONES, SPLITS, Record

FEW_PHOTOS = 10

LABEL_MAPPINGS = {  # how a source's labels became the published `malignant`, per source id prefix
    "fitz17k": ("Fitzpatrick17k's three-partition label: `malignant` is malignant; `benign` and "
                "`non-neoplastic` are both published as not malignant (benign), so a benign-vs-malignant "
                "model learns inflammatory and other non-neoplastic conditions as benign."),
}


def photo_counts(records: list[Record]) -> dict[tuple[str, str], set[str]]:
    """(split, tone) -> the distinct source photos behind its rows."""
    photos: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        photos[(r.split, r.skin_tone)].update(r.source_ids)
    return photos


def imbalance(records: list[Record]) -> dict[str, float | None]:
    """kind -> largest / smallest row count across tones (None when a tone has no row of that kind)."""
    out = {}
    for kind in KINDS:
        c = Counter(r.skin_tone for r in records if r.kind == kind)
        if c:
            counts = [c[t] for t in SKIN_TONES]
            out[kind] = max(counts) / min(counts) if min(counts) else None
    return out


def warnings(records: list[Record]) -> list[str]:
    photos = photo_counts(records)
    splits = [s for s in SPLITS if any(r.split == s for r in records)]
    lines = []
    for split in splits:
        for tone in SKIN_TONES:
            n = len(photos.get((split, tone), ()))
            if n == 0:
                lines.append(f"{split} has no {tone} row: per-tone scores on this split cannot cover {tone} skin.")
            elif n < FEW_PHOTOS:
                lines.append(f"{tone} rows of {split} rest on {n} distinct source photo{'s' * (n != 1)} "
                             f"(fewer than {FEW_PHOTOS}): their rows are variations of those photos, not "
                             "independent samples.")
    for tone in SKIN_TONES:
        n = len(set().union(*(photos.get((s, tone), set()) for s in splits)))
        if 0 < n < FEW_PHOTOS:
            lines.append(f"all {tone} rows rest on {n} distinct source photos (fewer than {FEW_PHOTOS}).")
    return lines


def section(f) -> str:
    """`## Source photos` of a card (`cards.text.CardFacts`): distinct photos per split x tone, imbalance
    per kind, warnings, label mappings."""
    records, source_names = f.records, [s.name for s in f.sources]
    photos = photo_counts(records)
    splits = [s for s in SPLITS if any(r.split == s for r in records)]
    lines = ["## Source photos", "",
             "Distinct source photos behind the rows of each split and skin tone (every photo named in "
             "the rows' `source_ids`: bases, donors, model training photos).", "",
             "| split | " + " | ".join(SKIN_TONES) + " |", "|---|" + "---:|" * len(SKIN_TONES)]
    for split in splits:
        lines.append(f"| {split} | " + " | ".join(str(len(photos.get((split, t), ()))) for t in SKIN_TONES) + " |")
    ratios = imbalance(records)
    lines += ["", "Tone imbalance per kind (largest over smallest row count across tones): " + ", ".join(
        f"{kind} {'no row of some tone' if r is None else f'{r:.2f}'}" for kind, r in ratios.items()) + "."]
    found = warnings(records)
    if found:
        lines += ["", "**Warnings:**", ""] + [f"- {w}" for w in found]
    mappings = [LABEL_MAPPINGS[n] for n in source_names if n in LABEL_MAPPINGS]
    if mappings:
        lines += ["", "Label mapping: " + " ".join(mappings)]
    return "\n".join(lines)
