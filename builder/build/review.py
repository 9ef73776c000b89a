"""The build's side of the human review (`build --decisions FILE`): the steps that read the decisions.

- masks -> ingest: a discarded automatic mask rejects its photo (`mask_discarded_in_review`); the ingest
  key changes with exactly those source ids;
- healthy, lesion_map, semantic: each store is seen through a `ReviewedStore`, so a discarded image is
  neither published nor used downstream (a discarded healthy image is no lesion-map base, no LoRA class
  image: the lesion-map plan and the LoRA inputs are re-planned from what remains); the store's
  fingerprint includes the ids it drops, so changed decisions rerun exactly the steps that depend on them;
- publish: the card reports the review, the manifest names the decisions file and its sha256.

Without --decisions none of this runs and the build is byte-identical to one without the feature.
"""
from __future__ import annotations

from pathlib import Path

from builder.core.decisions import Decisions, file_sha256
from builder.core.store import ReviewedStore, StageStore

QUEUE_OF_KIND = {"healthy": "healthy", "lesion_mapped": "lesion_map", "semantic": "semantic"}


def load(path: Path | None) -> Decisions | None:
    """The decisions file read and checked (a ReviewError names a bad line), or None without one."""
    return None if path is None else Decisions.read(path)


def mask_discards(decisions: Decisions | None) -> dict[str, str] | None:
    """Source id -> criterion for the ingest plan (only ids that are source ids matter there)."""
    return decisions.discarded() if decisions else None


def reviewed(store: StageStore, stage: str, decisions: Decisions | None) -> StageStore:
    """`store` seen through the review (unchanged when there are no decisions)."""
    if decisions is None:
        return store
    return ReviewedStore(store.root, stage, decisions.discarded())


def review_facts(decisions: Decisions, path: Path, stores: dict, mask_ids: set[str]) -> dict:
    """What the card and the manifest say of the review: per queue, candidates and the decision summary."""
    queues = {}
    if mask_ids:
        queues["masks"] = {"candidates": len(mask_ids), **decisions.summary(mask_ids)}
    for kind, queue in QUEUE_OF_KIND.items():
        store = stores.get(kind)
        if store is None:
            continue
        ids = {r.sample_id for r in StageStore.records(store)}
        if ids:
            queues[queue] = {"candidates": len(ids), **decisions.summary(ids)}
    return {"decisions_file": Path(path).name, "decisions_sha256": file_sha256(path),
            "reviewers": decisions.reviewers, "queues": queues}
