"""Leakage rules. Strict (the default): a synthetic takes the most held-out split among its real sources
(test > validation > train). The paper's: only the sources `paper_sources` names decide.

A record's sources are its `source_ids`, plus those of its base and donor (lesion-mapped) and,
for semantic synthetics, every real image its models saw (their training manifests). Anything
touching a test source leaves train and validation; near-duplicates across splits leave the less
held-out side. Every move and removal is a leakage-report row with its reason.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from builder.core.errors import ConfigError
from builder.core.schema import SPLITS, Record, Rejection

_ORDER = {s: i for i, s in enumerate(SPLITS)}  # train < validation < test: most held out wins
STAGE = "curate"
RULES = ("strict", "paper")  # curation.leakage_rule, export --rule


def record_sources(r: Record, by_id: dict[str, Record], manifests: dict[str, list[str]]) -> list[str]:
    """Every real source id a record derives from (sorted, unique)."""
    out, seen, todo = set(r.source_ids), {r.sample_id}, [r]
    while todo:
        cur = todo.pop()
        out.update(cur.source_ids)
        for ref in (cur.base_id, cur.donor_id):
            if ref and ref in by_id and ref not in seen:
                seen.add(ref)
                todo.append(by_id[ref])
            elif ref and ":" in ref:  # a source id itself (e.g. `ddi:000012`)
                out.add(ref)
        if cur.kind == "semantic" and cur.generator is not None:
            for key in (*cur.generator.adapters, cur.generator.model_id):
                out.update(manifests.get(key or "", ()))
    return sorted(out)


def apply_splits(records: list[Record], split_of: dict[str, str], *,
                 reference: Sequence[Record] = (),
                 training_manifests: dict[str, list[str]] | None = None, rule: str = "strict",
                 ) -> tuple[list[Record], list[dict], list[Rejection]]:
    """Give every record its split. Returns (records, leakage report rows, rejections).

    The strict rule (`rule="strict"`): a synthetic derived from any test image goes to test, never
    train or validation; one whose sources span train and validation goes to validation. The paper's
    (`rule="paper"`): the sources of `paper_sources` decide (a lesion map's donor, a semantic image's
    healthy prompt of its own disease). Each row whose sources span splits is a report row, so a
    reader can see which synthetics were held out and why. `reference` records (e.g. the real ones)
    resolve base and donor ids; `training_manifests` maps a model or adapter id to the source ids it
    was trained on.
    """
    check_rule(rule)
    by_id = _resolver(records, reference)
    manifests = training_manifests or {}
    kept, report, rejected = [], [], []
    for r in records:
        sources = record_sources(r, by_id, manifests)
        splits = [split_of.get(s) for s in sources]
        unknown = [s for s, sp in zip(sources, splits) if sp is None]
        if unknown:
            rejected.append(Rejection(STAGE, r.sample_id, "unknown_source",
                                      f"source ids {unknown} are not among the ingested real images "
                                      "(splits.csv); ingest them or drop this synthetic"))
            continue
        split = rule_split(rule, r, by_id, split_of, manifests)
        if r.kind != "real" and len(set(splits)) > 1:
            basis = "source" if rule == "strict" else _PAPER_BASIS.get(r.kind, "source")
            report.append(_row(r, "moved", split, f"{basis}_in_{split}", sources, splits))
        kept.append(dataclasses.replace(r, split=split))
    return kept, report, rejected


_PAPER_BASIS = {"lesion_mapped": "donor", "semantic": "healthy_prompt_of_its_disease"}


def check_rule(rule: str, what: str = "leakage rule") -> None:
    if rule not in RULES:
        raise ConfigError(f"{what} {rule!r}: expected one of {', '.join(RULES)} (strict: nothing derived "
                          "from a held-out photo is trained on; paper: the cgDDI paper's rule)")


def _row(r: Record, action: str, split: str | None, reason: str, sources: list[str], splits: list,
         dup_of: str | None = None, hamming: int | None = None) -> dict:
    return {"sample_id": r.sample_id, "kind": r.kind, "action": action, "split": split, "reason": reason,
            "source_ids": list(sources), "source_splits": list(splits), "dup_of": dup_of, "hamming": hamming}


def remove_cross_split_duplicates(records: list[Record], pairs: list[tuple[str, str, int]],
                                  split_of_sample: dict[str, str]) -> tuple[list[Record], list[dict], list[Rejection]]:
    """Drop the less held-out side of each cross-split near-duplicate pair (train first).

    `pairs` are (sample_a, sample_b, hamming; -1 for an embedding look-alike), over the
    records and any reference images (reals); `split_of_sample` gives every one's split. Only
    records can be removed: when the less held-out side is a reference image, the report says so.
    """
    mine = {r.sample_id: r for r in records}
    drop: dict[str, tuple[str, int]] = {}
    report = []
    for a, b, d in sorted(pairs):
        lo, hi = sorted((a, b), key=lambda s: (_ORDER[split_of_sample[s]], s))
        if lo in mine:
            if lo not in drop:
                drop[lo] = (hi, d)
        else:
            report.append({"sample_id": lo, "kind": "reference", "action": "kept", "split": split_of_sample[lo],
                           "reason": f"near_duplicate_of_{split_of_sample[hi]}_not_removable",
                           "source_ids": [], "source_splits": [], "dup_of": hi, "hamming": d if d >= 0 else None})
    rejections = []
    for sid, (other, d) in sorted(drop.items()):
        r = mine[sid]
        reason = f"{'look_alike' if d < 0 else 'near_duplicate'}_of_{split_of_sample[other]}"
        how = "an image-embedding look-alike" if d < 0 else f"within {d} bits (pHash)"
        report.append(_row(r, "removed", None, reason, r.source_ids, [split_of_sample[sid]], other,
                           d if d >= 0 else None))
        rejections.append(Rejection(STAGE, sid, reason, f"{split_of_sample[sid]} image {how} of "
                                    f"{split_of_sample[other]} image {other}: dup_of={other}"))
    return [r for r in records if r.sample_id not in drop], report, rejections


def paper_sources(kind: str, disease: str, source_ids: Sequence[str], *, donor_sources: Sequence[str] = (),
                  prompt_photos: dict[str, str | None] | None = None) -> list[str]:
    """The source ids whose split decides a synthetic's under the paper's rule (its supplementary S11).

    A lesion map: its donor's photos (its base may be a held-out photo); none known: every source.
    A semantic image: the photos its healthy prompt was made from that show its own disease, the
    (disease, healthy prompt) pair that would reconstruct one (`prompt_photos`: photo -> its joined
    disease, None when not known, which counts: never laxer than the paper); text-to-image: none.
    Other kinds (healthy): their own photos (the paper states no rule for them; inferred: the image is
    mostly that photo's pixels)."""
    if kind == "lesion_mapped":
        return sorted(donor_sources) if donor_sources else sorted(source_ids)
    if kind == "semantic":
        return sorted(s for s, d in (prompt_photos or {}).items() if d is None or d == disease)
    return sorted(source_ids)


def _most_held_out(ids, split_of: dict[str, str]) -> str:
    return max((split_of.get(s, "train") for s in ids), key=_ORDER.__getitem__, default="train")


def paper_rule_split(r: Record, by_id: dict[str, Record], split_of: dict[str, str]) -> str:
    """The split the paper's rule gives a synthetic (`paper_sources`); `by_id` resolves sample ids and
    source ids (a source id -> its real photo's record, for the photo's disease)."""
    return _most_held_out(paper_sources(r.kind, r.disease, r.source_ids, donor_sources=_donor_sources(r, by_id),
                                        prompt_photos=_prompt_photos(r, by_id)), split_of)


def _donor_sources(r: Record, by_id: dict[str, Record]) -> tuple[str, ...]:
    if r.donor_source_ids:
        return r.donor_source_ids
    if r.donor_id in by_id:
        return tuple(by_id[r.donor_id].source_ids)
    return (r.donor_id,) if r.donor_id and ":" in r.donor_id else ()  # a source id itself (imported rows)


def _prompt_photos(r: Record, by_id: dict[str, Record]) -> dict[str, str | None]:
    """The healthy prompt's photos and their diseases: from the real records, else the row's params."""
    parent = by_id.get(r.parent_id or "")
    if r.kind != "semantic" or parent is None:
        return dict((r.params or {}).get("healthy_prompt_photos") or {})
    known = (r.params or {}).get("healthy_prompt_photos") or {}
    return {s: by_id[s].disease if s in by_id and by_id[s].kind == "real" else known.get(s)
            for s in parent.source_ids}


def rule_split(rule: str, r: Record, by_id: dict[str, Record], split_of: dict[str, str],
               manifests: dict[str, list[str]]) -> str:
    """A record's split under `rule`: strict, its sources' most held-out split; the paper's, `paper_sources`'."""
    if rule == "paper" and r.kind != "real":
        return paper_rule_split(r, by_id, split_of)
    return _most_held_out(record_sources(r, by_id, manifests), split_of)


def rows_by_rule(records: list[Record], reference: Sequence[Record], split_of: dict[str, str],
                 manifests: dict[str, list[str]] | None = None) -> dict:
    """Synthetic rows per split under the strict rule and under the paper's, each from lineage; `by_kind`:
    the same per kind."""
    by_id = _resolver(records, reference)
    out: dict = {rule: dict.fromkeys(SPLITS, 0) for rule in RULES}
    out["by_kind"] = {}
    for r in records:
        if r.kind == "real":
            continue
        mine = out["by_kind"].setdefault(r.kind, {rule: dict.fromkeys(SPLITS, 0) for rule in RULES})
        for rule in RULES:
            split = rule_split(rule, r, by_id, split_of, manifests or {})
            out[rule][split] += 1
            mine[rule][split] += 1
    return out


def _resolver(records: Sequence[Record], reference: Sequence[Record]) -> dict[str, Record]:
    """sample id -> record, and a real photo's source id -> its record (the paper's rule reads its disease)."""
    by_id = {r.sample_id: r for r in (*reference, *records)}
    by_id.update({s: x for x in reference for s in x.source_ids if x.kind == "real" and s not in by_id})
    return by_id
