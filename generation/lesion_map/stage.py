"""Lesion-mapped synthetics stage (method section 2): plan (base, donor) pairs, then map each into a store."""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING

from builder.core.config import LesionMapConfig
from builder.core.directions import check_cross_source
from builder.core.errors import ConfigError
from builder.core.fingerprint import combine
from builder.core.progress import StageSummary
from builder.core.schema import (MASK_HEALED, MASK_LABELS, MASK_LESION, MASK_OTHER, Generator, Record,
                                 Rejection, digest, make_sample_id, merge_auto_masks)
from builder.core.stage import (Shard, StageKey, check_slot, outcome, pin, run_ranks, run_shards,
                                store_fingerprint, worker_count)
from builder.core.store import StageStore, encode_png
from generation.lesion_map.placement import PlacementError
from generation.lesion_map.plan import PAIRINGS, make_plan, plan_delivery, plan_summary
from generation.lesion_map.refill import Pixels, base_groups, check_fallbacks, map_with_fallbacks, other_bases

if TYPE_CHECKING:
    import polars

__all__ = ["delivery", "make_plan", "plan_lesion_map", "plan_summary", "run_lesion_map", "run_lesion_map_pool", "STAGE"]

log = logging.getLogger(__name__)
STAGE = "lesion_map"
PLAN_FILE = "plan.parquet"


def check(cfg: LesionMapConfig) -> None:
    """Fail before any work on settings that cannot make sense (the build calls it before ingest)."""
    pads = list(cfg.pads)
    if not pads or any(not isinstance(p, int) or isinstance(p, bool) or p < 0 for p in pads):
        raise ConfigError(f"lesion_map.pads={pads!r}: expected a non-empty list of integers >= 0, "
                          "tried in order (the method uses [10, 5, 0])")
    if not isinstance(cfg.dilate_px, int) or cfg.dilate_px < 0:
        raise ConfigError(f"lesion_map.dilate_px={cfg.dilate_px!r}: expected an integer >= 0 (3x3 dilations)")
    if not isinstance(cfg.feather, (int, float)) or not 0 <= cfg.feather <= 10:
        raise ConfigError(f"lesion_map.feather={cfg.feather!r}: expected a Gaussian sigma in pixels, 0-10 "
                          "(the method uses 1-2)")
    check_fallbacks(cfg)
    if cfg.pairing not in PAIRINGS:
        raise ConfigError(f"lesion_map.pairing={cfg.pairing!r}: expected one of {list(PAIRINGS)} (all: every "
                          "base x donor once, the paper; balanced: a budget of pairs within each split)")
    if cfg.budget is None and cfg.pairing != "all":
        raise ConfigError("lesion_map.budget: null (every pair) needs lesion_map.pairing: all; give a number "
                          "of lesion maps for pairing: balanced")
    if cfg.working_size is not None and (not isinstance(cfg.working_size, int) or cfg.working_size < 64):
        raise ConfigError(f"lesion_map.working_size={cfg.working_size!r}: expected null (each image at its own "
                          "size) or a side in pixels >= 64 (the notebook's masks are 256)")
    if cfg.budget is not None:
        check_budget(cfg.budget)
    check_cross_source(cfg.cross_source, "lesion_map.cross_source")
    if not isinstance(cfg.png_level, int) or isinstance(cfg.png_level, bool) or not 0 <= cfg.png_level <= 9:
        raise ConfigError(f"lesion_map.png_level={cfg.png_level!r}: expected a zlib level 0-9 (6: the default, "
                          "1: fastest lossless)")


PLAN_BYTES_PER_IMAGE = 64  # the plan's rows in memory (measured: ~6 GB for 10^8 planned images)
IMAGE_BYTES = 150_000      # a lesion-mapped PNG at the working size, about


def check_budget(budget) -> None:
    """A whole number of images whose plan fits in half this machine's memory; else refused with the estimate
    (a plan over 1 GiB that fits is announced with it)."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 0:
        raise ConfigError(f"lesion_map.budget={budget!r}: expected a whole number of images >= 0 (e.g. 120)")
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no estimate to compare with
        return
    need = budget * PLAN_BYTES_PER_IMAGE
    if need > memory / 2:
        raise ConfigError(f"lesion_map.budget={budget}: planning alone needs about {need / 2**30:.1f} GiB of memory "
                          f"({PLAN_BYTES_PER_IMAGE} bytes per image; this machine has {memory / 2**30:.1f} GiB) and "
                          f"the images about {budget * IMAGE_BYTES / 1e12:.1f} TB of disk; use a budget of at most "
                          f"{int(memory / 2 / PLAN_BYTES_PER_IMAGE):,}, or split the version")
    if need > 2**30:
        log.warning("lesion_map.budget=%d: planning needs about %.1f GiB of memory and the images about %.1f TB "
                    "of disk", budget, need / 2**30, budget * IMAGE_BYTES / 1e12)


def check_config(cfg: LesionMapConfig, rank: int = 0, world_size: int = 1, shard_size: int = 64) -> None:
    """`check` plus this process's slot and the shard size."""
    check(cfg)
    check_slot(rank, world_size, shard_size)


def plan_lesion_map(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                    budget: int | None = None, seed: int | None = None, shard_size: int = 64,
                    split_of: dict[str, str] | None = None, on_change: str = "refuse") -> tuple:
    """Pin the stage key, make the plan and write it to `out.root / plan.parquet` and `plan.csv`.

    Returns (plan, key, status). A rerun into the same folder must have the same key (settings,
    bases, donors, splits), or finished shards of the old plan would be mixed with new ones: a
    mismatch is refused naming what changed (or, with `on_change='reset'`, the folder is redone).
    """
    check_config(cfg, shard_size=shard_size)
    budget = cfg.budget if budget is None else budget
    seed = cfg.seed if seed is None else seed
    settings = {**dataclasses.asdict(cfg), "budget": budget, "seed": seed, "shard_size": shard_size,
                "pads": list(cfg.pads), "fallbacks": list(cfg.fallbacks), "downscales": list(cfg.downscales),
                "split_aware": bool(split_of), "published_mask": list(MASK_LABELS)}
    inputs = {"bases": store_fingerprint(bases), "donors": store_fingerprint(donors)}
    if split_of:
        inputs["splits"] = combine(sorted(split_of.items()))
    key = StageKey(STAGE, settings, inputs)
    status = pin(out, key, on_change=on_change)
    real = _records(donors, "real", "--donors")
    donor_recs = [r for r in real if donors.mask_path(r.sample_id).exists()]
    if len(donor_recs) < len(real):  # no label map, no lesion to move: they stay real images only
        log.info("%d of %d real images have no label map and cannot donate a lesion",
                 len(real) - len(donor_recs), len(real))
    plan = make_plan(_records(bases, "healthy", "--bases"), donor_recs, budget, seed, split_of, cfg.pairing,
                     cfg.cross_source)
    if not (out.root / PLAN_FILE).exists():
        _write_plan(out, plan)
    return plan, key, status


def run_lesion_map(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                   budget: int | None = None, seed: int | None = None, rank: int = 0,
                   world_size: int = 1, shard_size: int = 64, split_of: dict[str, str] | None = None,
                   on_change: str = "refuse") -> StageSummary:
    """Plan (written to out.root / 'plan.parquet' and .csv) then map this process's shards into `out`.

    Shard i (plan rows [i * shard_size, (i + 1) * shard_size)) is this worker's iff
    i % world_size == rank; a shard with a marker of the same fingerprint is done and skipped.
    """
    check_config(cfg, rank, world_size, shard_size)
    plan, key, status = plan_lesion_map(bases, donors, out, cfg, budget=budget, seed=seed,
                                        shard_size=shard_size, split_of=split_of, on_change=on_change)
    base_recs = {r.sample_id: r for r in bases.records()}
    donor_recs = {r.sample_id: r for r in donors.records()}
    ctx = _MapContext(bases, donors, out, cfg, base_recs, donor_recs,
                      base_groups([r for r in base_recs.values() if r.kind == "healthy"], split_of))
    shards = []
    for i in range(0, plan.height, shard_size):
        rows = list(plan.slice(i, shard_size).iter_rows(named=True))
        shards.append(Shard(f"{STAGE}-{i // shard_size:05d}", rows,
                            tuple(f"{r['row']}:{r['base_id']}:{r['donor_id']}:{r['seed']}" for r in rows)))

    def work(shard: Shard, _ctx, tick):
        records, rejections = [], []
        for row in shard.items:
            made = _map_row(row, ctx)
            (rejections if isinstance(made, Rejection) else records).append(made)
            tick()
        return records, rejections

    summary = run_shards(out, key, shards, work, rank=rank, world_size=world_size)
    summary.status = outcome(status, summary)
    return summary


def run_lesion_map_pool(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                        workers: int | None = None, budget: int | None = None, seed: int | None = None,
                        shard_size: int = 64, split_of: dict[str, str] | None = None,
                        on_change: str = "refuse") -> StageSummary:
    """`run_lesion_map` over `workers` processes (default: all cores), one rank each.

    The key is pinned and the plan written first, once; shards do not depend on the worker count,
    so the output is byte-identical to a one-process run (and a rerun with another count resumes it).
    """
    plan, _, status = plan_lesion_map(bases, donors, out, cfg, budget=budget, seed=seed,
                                      shard_size=shard_size, split_of=split_of, on_change=on_change)
    workers = worker_count(workers, -(-plan.height // shard_size))
    summary = run_ranks(run_lesion_map, workers, STAGE, bases, donors, out, cfg, budget=budget, seed=seed,
                        shard_size=shard_size, split_of=split_of)
    summary.status = outcome(status, summary)
    return summary


def delivery(out: StageStore) -> dict:
    """Delivered / planned per plan cell of a finished lesion-map store (see `plan.plan_delivery`)."""
    import polars as pl

    return plan_delivery(pl.read_parquet(out.root / PLAN_FILE), out.records())


@dataclasses.dataclass
class _MapContext:
    """What every row of one worker reads: the stores, settings, records and bases by (tone, split)."""

    bases: StageStore
    donors: StageStore
    out: StageStore
    cfg: LesionMapConfig
    base_recs: dict
    donor_recs: dict
    groups: dict


def _map_row(row: dict, ctx: _MapContext) -> Record | Rejection:
    """Map one plan row into `out`: a record on success, a rejection with its reason otherwise."""
    item = f"plan-row-{row['row']:06d}"
    who = f"base={row['base_id']} donor={row['donor_id']}"
    try:
        planned, donor = ctx.base_recs[row["base_id"]], ctx.donor_recs[row["donor_id"]]
        others = other_bases(ctx.groups, planned, donor, row.get("split")) if "other_base" in ctx.cfg.fallbacks else []
        mapped, base = map_with_fallbacks(planned, donor, _pixels(ctx.bases, "base", ctx.cfg.working_size),
                                          _pixels(ctx.donors, "donor", ctx.cfg.working_size),
                                          ctx.cfg, row["seed"], others)
    except PlacementError as e:
        return Rejection(STAGE, item, e.reason, f"{who}: {e.detail}")
    png = encode_png(mapped.rgb, ctx.cfg.png_level)
    lineage = {"base_id": base.sample_id, "donor_id": donor.sample_id, "plan_row": row["row"], "seed": row["seed"]}
    sample_id = make_sample_id("lesion_mapped", digest(png), lineage)
    path = ctx.out.put_image(sample_id, png)
    ctx.out.put_mask(sample_id, mapped.label_map)
    mask_path = ctx.out.put_segmentation(sample_id, published_mask(mapped.lesion, _healed(ctx, base, mapped)))
    return dataclasses.replace(_record(sample_id, path, base, donor, mapped, row, ctx.cfg), mask_path=mask_path)


def published_mask(lesion, healed):
    """A lesion-mapped row's `mask`: the placed lesion's footprint (`Mapped.lesion`, where its label map got
    label 1) as MASK_LESION, the base's healed pixels it does not cover as MASK_HEALED."""
    import numpy as np

    out = np.full(lesion.shape, MASK_OTHER, np.uint8)
    if healed is not None:
        out[healed] = MASK_HEALED
    out[lesion] = MASK_LESION
    return out


def _healed(ctx: "_MapContext", base: Record, mapped):
    """The base's healed region (bool, the mapped image's size), or None when its record has no mask."""
    import numpy as np

    if not base.mask_path:  # a base made without one (an imported release)
        return None
    seg = _read(ctx.bases, base.sample_id, "base", ctx.bases.read_segmentation)
    if seg.shape != mapped.lesion.shape:  # the working size: resized as its label map was (nearest)
        import cv2

        seg = cv2.resize(seg, mapped.lesion.shape[::-1], interpolation=cv2.INTER_NEAREST)
    return np.asarray(seg) == MASK_HEALED


def _pixels(store: StageStore, role: str, size: int | None = None) -> Pixels:
    """How a row reads its base or donor; with `size`, both image and label map resized to size x size
    first (area for colours, nearest for labels), as the notebook's 256x256 working images."""
    if size is None:
        return Pixels(image=lambda sid: _read(store, sid, role, store.read_image),
                      mask=lambda sid: _read(store, sid, role, store.read_mask))
    import cv2

    return Pixels(image=lambda sid: cv2.resize(_read(store, sid, role, store.read_image), (size, size),
                                               interpolation=cv2.INTER_AREA),
                  mask=lambda sid: cv2.resize(_read(store, sid, role, store.read_mask), (size, size),
                                              interpolation=cv2.INTER_NEAREST))


def _read(store: StageStore, sample_id: str, role: str, read):
    try:
        return read(sample_id)
    except FileNotFoundError as e:
        raise PlacementError(f"{role}_files_missing", f"{role} image or label map missing in {store.root}: "
                                                      f"{e.filename}") from e


def _record(sample_id: str, path: str, base: Record, donor: Record, mapped, row: dict,
            cfg: LesionMapConfig) -> Record:
    # Published as is; code reads the typed copies (`plan_row`, `base_source_ids`, `donor_source_ids`).
    params = {
        "pad": None if mapped.placement == "kept_in_place" else mapped.pad, "offset": list(mapped.offset),
        "angle": mapped.angle, "patch_hw": list(mapped.patch_hw), "lesion_scale": mapped.scale,
        "pads": list(cfg.pads), "dilate": cfg.dilate_px, "feather": cfg.feather, "blend": cfg.blend,
        "donor_resize": cfg.donor_resize, "fallbacks": list(cfg.fallbacks), "planned_base_id": row["base_id"],
        "donor_skin_tone": donor.skin_tone, "base_skin_tone": base.skin_tone,
        "donor_fitzpatrick": donor.fitzpatrick, "plan_row": row["row"],
        "base_source_ids": sorted(base.source_ids), "donor_source_ids": sorted(donor.source_ids),
    }
    return Record(
        sample_id=sample_id, kind="lesion_mapped", skin_tone=base.skin_tone, malignant=bool(donor.malignant),
        disease=donor.disease, source_ids=sorted(set(base.source_ids) | set(donor.source_ids)),
        image_path=path, fitzpatrick=base.fitzpatrick, disease_raw=donor.disease_raw,
        base_id=base.sample_id, donor_id=donor.sample_id, placement=mapped.placement, seed=row["seed"],
        generator=Generator("lesion_map"), params=params,
        auto_masks=merge_auto_masks(base.auto_masks, donor.auto_masks), plan_row=row["row"],
        base_source_ids=tuple(sorted(base.source_ids)), donor_source_ids=tuple(sorted(donor.source_ids)))


def _records(store: StageStore, kind: str, flag: str) -> list[Record]:
    recs = store.records()
    keep = [r for r in recs if r.kind == kind]
    if recs and not keep:
        found = sorted({r.kind for r in recs})
        raise ConfigError(f"{flag} {store.root}: no records of kind {kind!r} (found {found}); pass the "
                          f"{'healthy stage output' if kind == 'healthy' else 'real source store'} instead")
    return keep


def _write_plan(out: StageStore, plan: "polars.DataFrame") -> None:
    out.root.mkdir(parents=True, exist_ok=True)
    # Workers of one run may all get here: each writes the same bytes through its own temp file.
    tag = f"{os.getpid()}.tmp"
    for name, write in (("plan.csv", plan.write_csv), (PLAN_FILE, plan.write_parquet)):
        tmp = out.root / f".{name}.{tag}"
        write(tmp)
        os.replace(tmp, out.root / name)
