"""Leakage rule: a synthetic takes the most held-out split among its real sources (test > validation > train)."""
from __future__ import annotations

import dataclasses

from builder.schema import Record, Rejection

_ORDER = {"train": 0, "validation": 1, "test": 2}


def apply_splits(records: list[Record], split_of: dict[str, str]) -> tuple[list[Record], list[dict], list[Rejection]]:
    """Give every record its split. Returns (records, leakage report rows, rejections).

    A synthetic derived from any test image goes to test, never train or validation (the method's
    leakage rule); one whose sources span train and validation goes to validation. Each such move
    is a report row, so a reader can see which synthetics were held out and why.
    """
    kept, report, rejected = [], [], []
    for r in records:
        splits = [split_of.get(s) for s in r.source_ids]
        unknown = [s for s, sp in zip(r.source_ids, splits) if sp is None]
        if unknown:
            rejected.append(Rejection("curate", r.sample_id, "unknown_source",
                                      f"source ids {unknown} are not among the ingested real images"))
            continue
        split = max(splits, key=_ORDER.__getitem__)
        if r.kind != "real" and len(set(splits)) > 1:
            report.append({"sample_id": r.sample_id, "kind": r.kind, "split": split,
                           "reason": f"source_in_{split}", "source_ids": list(r.source_ids),
                           "source_splits": splits})
        kept.append(dataclasses.replace(r, split=split))
    return kept, report, rejected
