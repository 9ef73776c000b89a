"""Leakage rule: a synthetic takes the most held-out split among its real sources (test > validation > train).

A record's sources are its `source_ids`, plus those of its base and donor (lesion-mapped) and,
for semantic synthetics, every real image its models saw (their training manifests). Anything
touching a test source leaves train and validation; near-duplicates across splits leave the less
held-out side. Every move and removal is a leakage-report row with its reason.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

from builder.core.schema import SPLITS, Record, Rejection

_ORDER = {s: i for i, s in enumerate(SPLITS)}  # train < validation < test: most held out wins
STAGE = "curate"


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
                 training_manifests: dict[str, list[str]] | None = None,
                 ) -> tuple[list[Record], list[dict], list[Rejection]]:
    """Give every record its split. Returns (records, leakage report rows, rejections).

    A synthetic derived from any test image goes to test, never train or validation (the method's
    leakage rule); one whose sources span train and validation goes to validation. Each such move
    is a report row, so a reader can see which synthetics were held out and why. `reference`
    records (e.g. the real ones) resolve base and donor ids; `training_manifests` maps a model or
    adapter id to the source ids it was trained on.
    """
    by_id = {r.sample_id: r for r in (*reference, *records)}
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
        split = max(splits, key=_ORDER.__getitem__)
        if r.kind != "real" and len(set(splits)) > 1:
            report.append(_row(r, "moved", split, f"source_in_{split}", sources, splits))
        kept.append(dataclasses.replace(r, split=split))
    return kept, report, rejected


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


def paper_rule_split(r: Record, by_id: dict[str, Record], split_of: dict[str, str]) -> str:
    """The split the paper's rule (its supplementary S11) would give a synthetic, for the card's comparison.

    A lesion map is held out when its donor is a held-out photo (its base may be one); a semantic image
    when its healthy prompt (`parent_id`) was made from a held-out photo of the same disease, the
    (disease, healthy prompt) pair that would reconstruct it; otherwise it is train. The paper states no
    rule for healthy synthetics: they keep their own photo's split (inferred: the image is mostly that
    photo's pixels)."""
    def own(ids) -> str:
        return max((split_of.get(s, "train") for s in ids), key=_ORDER.__getitem__, default="train")

    if r.kind == "lesion_mapped" and r.donor_id in by_id:
        return own(by_id[r.donor_id].source_ids)
    if r.kind == "semantic":
        parent = by_id.get(r.parent_id or "")
        if parent is None:
            return "train"
        photos = [by_id.get(s) for s in parent.source_ids]
        same = [p for p in photos if p is not None and p.disease == r.disease]
        return own([s for p in same for s in p.source_ids]) if same else "train"
    return own(r.source_ids)


def rows_by_rule(records: list[Record], reference: Sequence[Record], split_of: dict[str, str]) -> dict:
    """Synthetic rows per split under the strict rule (their splits as placed) and under the paper's."""
    by_id = {r.sample_id: r for r in (*reference, *records)}
    by_id.update({s: x for x in reference for s in x.source_ids if x.kind == "real"})  # a source id -> its photo
    out = {"strict": dict.fromkeys(SPLITS, 0), "paper": dict.fromkeys(SPLITS, 0)}
    for r in records:
        if r.kind == "real":
            continue
        out["strict"][r.split] += 1
        out["paper"][paper_rule_split(r, by_id, split_of)] += 1
    return out

