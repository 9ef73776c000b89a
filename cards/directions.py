"""The card's account of a build over several sources: each source's photos per split, and the synthetic rows
per direction (whose lesions or diseases on whose skin), beside the paper's cross-dataset figures (its S7).

A row's direction is read from its lineage columns alone: a healthy row is its photo's source; a lesion map
goes from its donor's source to its base's (`donor_source_ids`, `base_source_ids`); a semantic row from
the sources of the photos its disease models saw to the source of its healthy prompt (`parent_id`; a
text-to-image row has no prompt image: `-`). A source is an id prefix (`ddi`, `fitz17k`). One-source builds
get no such section.
"""
from __future__ import annotations

from collections import Counter

from builder.core.schema import KINDS, SPLITS, Record

# The paper's supplementary S7 (Fitzpatrick17k's expert-verified subset, cross-dataset runs) and its DDI counts
# (S2-S3, for the within-DDI rows): rows it reports per (kind, donor or disease source, base or prompt source).
PAPER = {
    ("lesion_mapped", "ddi", "fitz17k"): 13_822, ("lesion_mapped", "fitz17k", "ddi"): 9_394,
    ("semantic", "fitz17k", "ddi"): 37_080, ("semantic", "ddi", "fitz17k"): 8_970,
    ("lesion_mapped", "fitz17k", "fitz17k"): 1_124, ("semantic", "fitz17k", "fitz17k"): 5_520,
    ("healthy", "fitz17k", "fitz17k"): 46,
    ("lesion_mapped", "ddi", "ddi"): 80_427, ("semantic", "ddi", "ddi"): 185_400, ("healthy", "ddi", "ddi"): 309,
}
WHAT = {"healthy": "healthy images of {b} photos", "lesion_mapped": "{d} lesions onto {b} healthy bases",
        "semantic": "{d} diseases with {b} healthy prompts"}


def prefixes(ids) -> str:
    """The sources of some source ids, joined with `+` (`-` for none)."""
    return "+".join(sorted({s.split(":", 1)[0] for s in ids})) or "-"


def direction(r: Record, by_id: dict[str, Record]) -> tuple[str, str]:
    """(donor or disease source, base or prompt source) of a synthetic row."""
    if r.kind == "lesion_mapped":
        return prefixes(r.donor_source_ids or ()), prefixes(r.base_source_ids or ())
    if r.kind == "semantic":
        parent = by_id.get(r.parent_id or "")
        prompt = set(parent.source_ids) if parent is not None else set()
        return prefixes(set(r.source_ids) - prompt), prefixes(prompt)
    return prefixes(r.source_ids), prefixes(r.source_ids)


def direction_counts(records: list[Record]) -> dict[tuple[str, str, str], Counter]:
    """(kind, from source, onto source) -> rows per split."""
    by_id = {r.sample_id: r for r in records}
    out: dict[tuple[str, str, str], Counter] = {}
    for r in records:
        if r.kind != "real":
            out.setdefault((r.kind, *direction(r, by_id)), Counter())[r.split] += 1
    return dict(sorted(out.items(), key=lambda kv: (KINDS.index(kv[0][0]), kv[0][1:])))


def section(f) -> str:
    """`## Sources and directions` of a card (`cards.text.CardFacts`) built from several sources; else ''."""
    info = (f.source_info or {}).get("sources") or []
    names = sorted({s.split(":", 1)[0] for r in f.records for s in r.source_ids})
    if len(info) < 2 and len(names) < 2:
        return ""
    lines = ["## Sources and directions", "",
             f"This version was built from {max(len(info), len(names))} sources at once. Ids keep each source's "
             "prefix; each source keeps its own holdout (see Splits), and a row derived from any test photo of "
             "any source is never train. LICENSE.md carries every source's terms.", "",
             "| source | layout | subset | table rows | " + " | ".join(f"photos behind {s} rows" for s in SPLITS)
             + " |", "|---|---|---|---:|" + "---:|" * len(SPLITS)]
    photos = {(n, s): set() for n in names for s in SPLITS}
    for r in f.records:
        for sid in r.source_ids:
            photos[(sid.split(":", 1)[0], r.split)].add(sid)
    described = {e["name"]: e for e in info}
    for n in sorted(set(names) | set(described)):
        e = described.get(n, {})
        lines.append(f"| `{n}` | {e.get('layout', '-')} | {e.get('subset', '-')} | {e.get('in', '-')} | "
                     + " | ".join(str(len(photos.get((n, s), ()))) for s in SPLITS) + " |")
    lines += ["", "Synthetic rows per direction and split, with the paper's figure for the same direction "
              "(its supplementary S7 for Fitzpatrick17k's expert-verified subset and the cross-dataset runs; "
              "its DDI counts, after human review and discarded placements, for DDI alone). The paper's figures "
              "are for its whole sources and every pair; "
              "this version's depend on its sources, budgets and `cross_source` settings "
              f"(lesion maps: `{f.cfg.lesion_map.cross_source}`, semantic: `{f.cfg.semantic.cross_source}`).", "",
              "| kind | direction | " + " | ".join(SPLITS) + " | total | the paper |",
              "|---|---|" + "---:|" * (len(SPLITS) + 2)]
    for (kind, src, dst), c in direction_counts(f.records).items():
        what = WHAT[kind].format(d=f"`{src}`", b=f"`{dst}`")
        paper = PAPER.get((kind, src, dst))
        lines.append(f"| {kind} | {what} | " + " | ".join(str(c[s]) for s in SPLITS)
                     + f" | {sum(c.values())} | {f'{paper:,}' if paper is not None else '-'} |")
    return "\n".join(lines)


def split_sentence(info: dict, csv: str | None) -> str:
    """How each of several sources drew its test split under `split_method: patchalign24`."""
    parts = []
    for e in info.get("sources", []):
        if e.get("layout") == "ddi":
            order = "PatchAlign24's CSV" if csv else f"`{e['table']}`"
            parts.append(f"`{e['name']}`: PatchAlign24's DDI holdout over the rows of {order}")
        else:
            parts.append(f"`{e['name']}`: the same call over the rows of its own `{e['table']}` (a holdout of "
                         "the toolkit's, not one of PatchAlign24's)")
    return "; ".join(parts)
