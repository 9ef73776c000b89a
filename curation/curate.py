"""Curation end to end: hash, split real images by lineage, apply the leakage rule, de-duplicate.

1. Hash every real image (pixels + pHash, in parallel); near-duplicate reals are linked so they
   share a lineage group, then `assign_splits` places whole groups.
2. Inside each split, extra copies of a real image are dropped (`dup_of` names the kept one).
3. Synthetics take their sources' most held-out split (`apply_splits`); cross-split
   near-duplicates leave the less held-out side; inside a split one copy is kept.
Counts reconcile at every step: in = kept + rejected.
"""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

from builder.core.backends import backend_for
from builder.core.config import CurationConfig
from builder.core.errors import BuildError, ConfigError
from builder.core.schema import Record, Rejection
from builder.core.store import StageStore
from curation.dedup import (Duplicate, ImageHash, cross_group_pairs, find_duplicates, hash_images,
                            similar_pairs)
from curation.leakage import (apply_splits, check_rule, record_sources, remove_cross_split_duplicates,
                              rows_by_rule)
from curation.splits import assign_splits

STAGE = "curate"


@dataclasses.dataclass
class RealSplit:
    split_of: dict[str, str]  # source_id -> split
    source_of: dict[str, str]  # real sample_id -> its source id (dropped copies included)
    hashes: dict[str, ImageHash]  # sample_id -> hashes
    duplicates: list[Duplicate]  # real copies dropped inside a split
    rejections: list[Rejection]  # unreadable images
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)  # sample_id -> image file
    look_alikes: int = 0  # embedding pairs that joined lineage groups

    @property
    def sample_split(self) -> dict[str, str]:
        return {sid: self.split_of[src] for sid, src in self.source_of.items()}

    def kept(self, real: list[Record]) -> list[Record]:
        gone = {d.sample_id for d in self.duplicates} | {r.item_id for r in self.rejections}
        return [r for r in real if r.sample_id not in gone]


@dataclasses.dataclass
class Curated:
    records: list[Record]
    rejections: list[Rejection]
    report: list[dict]  # leakage report rows
    duplicates: list[Duplicate]
    counts: dict
    hashes: dict[str, ImageHash] = dataclasses.field(default_factory=dict)  # of the kept records


def check_config(cfg: CurationConfig) -> None:
    """Bad curation settings fail before any image is read."""
    if not isinstance(cfg.phash_hamming, int) or not 0 <= cfg.phash_hamming <= 16:
        raise ConfigError(f"curation.phash_hamming={cfg.phash_hamming!r}: expected an int of bits in 0-16 "
                          "(64-bit pHash; 6 finds re-encodes and resizes, above ~12 unrelated photos match)")
    from curation.splits import METHODS, check_ratios

    check_ratios(dict(cfg.ratios))
    backend_for("embedding", cfg).check(cfg)  # a Hub id needs a pinned revision
    if cfg.embedding_model and not 0 < cfg.embedding_min_cosine <= 1:
        raise ConfigError(f"curation.embedding_min_cosine={cfg.embedding_min_cosine!r}: expected a cosine in (0, 1]")
    check_rule(cfg.leakage_rule, "curation.leakage_rule")
    if cfg.split_method not in METHODS:
        raise ConfigError(f"curation.split_method={cfg.split_method!r}: expected one of {', '.join(METHODS)}")
    from curation.splits import PATCHALIGN_TEST_SIZE

    if cfg.split_method == "patchalign24" and abs(cfg.ratios["test"] - PATCHALIGN_TEST_SIZE) > 1e-9:
        raise ConfigError(f"curation.ratios test={cfg.ratios['test']} with split_method=patchalign24, whose "
                          f"holdout is test_size={PATCHALIGN_TEST_SIZE}; set ratios.test to {PATCHALIGN_TEST_SIZE}")


def _paths(records: list[Record], store: StageStore) -> dict[str, Path]:
    return {r.sample_id: store.root / (r.image_path or f"images/{r.sample_id}.png") for r in records}


def hash_records(records: list[Record], store: StageStore, workers: int | None = None,
                 desc: str = "hashing") -> tuple[dict[str, ImageHash], list[Rejection]]:
    hashes, rejected = hash_images(_paths(records, store).items(), workers, desc=desc)
    return {h.sample_id: h for h in hashes}, [dataclasses.replace(r, stage=STAGE) for r in rejected]


def split_real(real: list[Record], store: StageStore, cfg: CurationConfig, *, workers: int | None = None,
               test_ids: list[str] | None = None) -> RealSplit:
    """Splits over real images, near-duplicates grouped together, then de-duplicated per split."""
    check_config(cfg)
    hashes, rejected = hash_records(real, store, workers, desc="hashing real")
    by_sample = {r.sample_id: r for r in real}
    ordered = sorted(hashes.values(), key=lambda h: h.sample_id)
    # Linking every near pair (no split yet) keeps copies out of different splits: no leak to remove.
    pairs = [(a, b) for a, b, _ in similar_pairs(ordered, cfg.phash_hamming)]
    paths = _paths(real, store)
    alike = _look_alikes(cfg, {sid: paths[sid] for sid in hashes})  # same lesion, other photo
    links = [(by_sample[a].source_ids[0], by_sample[b].source_ids[0]) for a, b in pairs + alike]
    # A holdout decided on the table may name rows that ingest rejected: they are simply absent.
    split_of = assign_splits(real, cfg, links=links, test_ids=test_ids,
                             missing_ok=test_ids is not None and cfg.split_method == "patchalign24")
    group = {r.sample_id: split_of[r.source_ids[0]] for r in real}
    dups = find_duplicates(ordered, cfg.phash_hamming, group_of=group)
    return RealSplit(split_of, {r.sample_id: r.source_ids[0] for r in real}, hashes, dups, rejected,
                     paths, len(alike))


def _look_alikes(cfg: CurationConfig, paths: dict[str, Path]) -> list[tuple[str, str]]:
    """Embedding look-alike pairs (sample ids) when a model is configured, else none."""
    if not cfg.embedding_model:
        return []
    from curation.embed import look_alikes

    return [(a, b) for a, b, _ in look_alikes(sorted(paths.items()), cfg)]


def curate_records(candidates: list[Record], stores: dict[str, StageStore], real: list[Record],
                   real_split: RealSplit, cfg: CurationConfig, *, workers: int | None = None,
                   training_manifests: dict[str, list[str]] | None = None,
                   outside: dict[str, str] | None = None) -> Curated:
    """Splits for synthetics (and reals when published), leakage removal, per-split de-duplication.

    `stores` maps a record kind to the store holding its images; `real` is every ingested real
    record (dropped copies too), used to resolve base and donor ids; `outside` the splits of source
    photos that were not ingested (never overriding an ingested photo's).
    """
    split_of = {**(outside or {}), **real_split.split_of}
    recs, report, rejections = apply_splits(candidates, split_of, reference=real,
                                            training_manifests=training_manifests, rule=cfg.leakage_rule)
    hashes, bad = _hash_by_kind(recs, stores, workers)
    rejections += bad
    bad_ids = {r.item_id for r in bad}
    recs = [r for r in recs if r.sample_id not in bad_ids]
    by_id = {r.sample_id: r for r in (*real, *recs)}
    lineage = {r.sample_id: set(record_sources(r, by_id, training_manifests or {})) for r in recs}
    paths = {sid: p for kind, st in stores.items()
             for sid, p in _paths([r for r in recs if r.kind == kind], st).items()}
    recs, rep2, rej2, n_related = _cross_split(recs, hashes, lineage, real_split, cfg, paths)
    report += rep2
    rejections += rej2
    # Semantic samples share their model's whole training set: look-alikes among them are copies
    # (memorisation, mode collapse), so only image-derived kinds get the variant exemption.
    variants = {r.sample_id: lineage[r.sample_id] for r in recs if r.kind != "semantic"}
    dups = find_duplicates([hashes[r.sample_id] for r in recs], cfg.phash_hamming,
                           group_of={r.sample_id: r.split for r in recs}, lineage=variants)
    dropped = {d.sample_id for d in dups}
    rejections += [d.to_rejection(STAGE) for d in dups]
    recs = [r for r in recs if r.sample_id not in dropped]
    counts = reconcile("curate", len(candidates), recs, rejections)
    counts["cross_split_pairs_shared_lineage"] = n_related  # kept: derivation, placed by the leakage rule
    counts["leakage_rule"] = cfg.leakage_rule  # the rule applied; rows_by_rule counts both, from lineage
    counts["rows_by_rule"] = rows_by_rule(recs, real, split_of, training_manifests)
    return Curated(sorted(recs, key=lambda r: r.sample_id), sorted(rejections, key=_key), report, dups, counts,
                   {r.sample_id: hashes[r.sample_id] for r in recs})


def _hash_by_kind(recs: list[Record], stores: dict[str, StageStore], workers: int | None):
    hashes: dict[str, ImageHash] = {}
    rejections: list[Rejection] = []
    for kind in sorted({r.kind for r in recs}):
        if kind not in stores:
            raise ConfigError(f"no store given for {kind} records; pass the stage store that holds their images")
        h, bad = hash_records([r for r in recs if r.kind == kind], stores[kind], workers, desc=f"hashing {kind}")
        hashes.update(h)
        rejections += bad
    return hashes, rejections


def _cross_split(recs: list[Record], hashes: dict[str, ImageHash], lineage: dict[str, set[str]],
                 real_split: RealSplit, cfg: CurationConfig, paths: dict[str, Path]):
    """Near-duplicates across splits, among the records and every real image (dropped copies too).

    A pair that shares a source is derivation, not leakage: a lesion-mapped image in test (its
    donor is a test image) looks like its train base; the leakage rule already placed it.
    """
    split_of_sample = {r.sample_id: r.split for r in recs}
    real_hashes = {sid: h for sid, h in real_split.hashes.items() if sid not in split_of_sample}
    split_of_sample.update({sid: real_split.sample_split[sid] for sid in real_hashes})
    lineage = {**{sid: {real_split.source_of[sid]} for sid in real_hashes}, **lineage}
    pairs = cross_group_pairs([*hashes.values(), *real_hashes.values()], cfg.phash_hamming, split_of_sample)
    alike = _look_alikes(cfg, {**{sid: real_split.paths[sid] for sid in real_hashes}, **paths})
    pairs += [(a, b, -1) for a, b in alike if split_of_sample[a] != split_of_sample[b]]  # -1: embedding
    unrelated = [(a, b, d) for a, b, d in pairs if not lineage[a] & lineage[b]]
    recs, report, rejections = remove_cross_split_duplicates(recs, unrelated, split_of_sample)
    return recs, report, rejections, len(pairs) - len(unrelated)


def _key(r: Rejection) -> tuple:
    return (r.stage, r.item_id, r.reason)


def reconcile(stage: str, n_in: int, kept: list, rejections: list[Rejection]) -> dict:
    """Counts of a step; in != kept + rejected is a bug, so it raises rather than publish."""
    if n_in != len(kept) + len(rejections):
        raise BuildError(f"{stage} lost inputs: {n_in} in, {len(kept)} kept + {len(rejections)} rejected")
    return {"in": n_in, "kept": len(kept), "rejected": len(rejections),
            "by_reason": dict(sorted(Counter(r.reason for r in rejections).items()))}


def read_training_manifests(paths: list[Path]) -> dict[str, list[str]]:
    """Model/adapter id -> source ids it saw. Each JSON file is `{"model": id, "source_ids": [...]}`
    or a mapping `{id: [source ids]}`."""
    out: dict[str, list[str]] = {}
    for p in paths:
        try:
            data = json.loads(Path(p).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"training manifest {p}: cannot read as JSON ({e}); expected "
                              '{"model": "<id>", "source_ids": ["ddi:000001", ...]}') from e
        if isinstance(data, dict) and "source_ids" in data and "model" in data:
            data = {data["model"]: data["source_ids"]}
        if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
            raise ConfigError(f"training manifest {p}: expected {{'model': id, 'source_ids': [...]}} "
                              "or {id: [source ids]}")
        for k, v in data.items():
            out.setdefault(k, []).extend(v)
    return out
