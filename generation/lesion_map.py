"""Lesion-mapped synthetics stage (method section 2): plan (base, donor) pairs, then map each into a store."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import TYPE_CHECKING, Iterator

from builder.core.config import LesionMapConfig
from builder.core.errors import ConfigError
from builder.core.progress import StageSummary, progress
from builder.core.schema import Generator, Record, Rejection, digest, make_sample_id, merge_auto_masks
from builder.core.store import StageStore, encode_png
from generation.placement import PlacementError
from generation.plan import make_plan, plan_delivery, plan_summary
from generation.refill import Pixels, base_groups, check_fallbacks, map_with_fallbacks, other_bases

if TYPE_CHECKING:
    import polars

__all__ = ["delivery", "make_plan", "plan_lesion_map", "plan_summary", "run_lesion_map", "run_lesion_map_pool", "STAGE"]

log = logging.getLogger(__name__)
STAGE = "lesion_map"
PLAN_FILE = "plan.parquet"
SETTINGS_FILE = "lesion_map_settings.json"


def check_config(cfg: LesionMapConfig, rank: int = 0, world_size: int = 1, shard_size: int = 64) -> None:
    """Fail before any work on settings that cannot make sense."""
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
    if not isinstance(cfg.png_level, int) or isinstance(cfg.png_level, bool) or not 0 <= cfg.png_level <= 9:
        raise ConfigError(f"lesion_map.png_level={cfg.png_level!r}: expected a zlib level 0-9 (6: the default, "
                          "1: fastest lossless)")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank} must be in [0, world_size={world_size})")
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size} must be >= 1")


def plan_lesion_map(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                    budget: int | None = None, seed: int | None = None,
                    shard_size: int = 64, split_of: dict[str, str] | None = None) -> "polars.DataFrame":
    """Make the plan and write it to `out.root / plan.parquet` and `plan.csv` (inspect before mapping).

    A rerun into the same folder must ask for the same plan and settings, or finished shards of
    the old plan would be mixed with new ones: a mismatch is an error naming both.
    """
    check_config(cfg, shard_size=shard_size)
    budget = cfg.budget if budget is None else budget
    seed = cfg.seed if seed is None else seed
    real = _records(donors, "real", "--donors")
    donor_recs = [r for r in real if donors.mask_path(r.sample_id).exists()]
    if len(donor_recs) < len(real):  # no label map, no lesion to move: they stay real images only
        log.info("%d of %d real images have no label map and cannot donate a lesion",
                 len(real) - len(donor_recs), len(real))
    plan = make_plan(_records(bases, "healthy", "--bases"), donor_recs, budget, seed, split_of)
    settings = {**dataclasses.asdict(cfg), "budget": budget, "seed": seed, "shard_size": shard_size,
                "pads": list(cfg.pads), "fallbacks": list(cfg.fallbacks), "downscales": list(cfg.downscales),
                "split_aware": bool(split_of)}
    _write_plan(out, plan, settings)
    return plan


def run_lesion_map(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                   budget: int | None = None, seed: int | None = None, rank: int = 0,
                   world_size: int = 1, shard_size: int = 64,
                   split_of: dict[str, str] | None = None) -> StageSummary:
    """Plan (written to out.root / 'plan.parquet' and .csv) then map every pair into `out`.

    Shard i (plan rows [i * shard_size, (i + 1) * shard_size)) is this worker's iff
    i % world_size == rank; a shard with a records file is done and skipped (resume).
    """
    check_config(cfg, rank, world_size, shard_size)
    plan = plan_lesion_map(bases, donors, out, cfg, budget=budget, seed=seed, shard_size=shard_size,
                           split_of=split_of)
    summary = StageSummary(STAGE)
    base_recs = {r.sample_id: r for r in bases.records()}
    donor_recs = {r.sample_id: r for r in donors.records()}
    ctx = _MapContext(bases, donors, out, cfg, base_recs, donor_recs,
                      base_groups([r for r in base_recs.values() if r.kind == "healthy"], split_of))
    mine = []
    for i in range(0, plan.height, shard_size):
        shard, name = plan.slice(i, shard_size), f"{STAGE}-{i // shard_size:05d}"
        if (i // shard_size) % world_size != rank:
            continue
        if out.shard_done(name):
            summary.skipped += shard.height
        else:
            mine.append((name, shard))
    pending = {name: ([], []) for name, _ in mine}
    for name, row, last in progress(_flat(mine), desc="lesion-map", total=sum(s.height for _, s in mine)):
        records, rejections = pending[name]
        _map_row(row, ctx, records, rejections, summary)
        if last:
            out.finish_shard(name, *pending.pop(name))
    return summary.stop()


def run_lesion_map_pool(bases: StageStore, donors: StageStore, out: StageStore, cfg: LesionMapConfig, *,
                        workers: int | None = None, budget: int | None = None, seed: int | None = None,
                        shard_size: int = 64, split_of: dict[str, str] | None = None) -> StageSummary:
    """`run_lesion_map` over `workers` processes (default: all cores), one rank each.

    The plan is written first, once; shards do not depend on the worker count, so the output is
    byte-identical to a one-process run (and a rerun with another count resumes it).
    """
    summary = StageSummary(STAGE)
    plan = plan_lesion_map(bases, donors, out, cfg, budget=budget, seed=seed, shard_size=shard_size,
                           split_of=split_of)
    workers = min(max(1, workers or os.cpu_count() or 1), max(1, -(-plan.height // shard_size)))
    kw = dict(budget=budget, seed=seed, world_size=workers, shard_size=shard_size, split_of=split_of)
    if workers == 1:
        parts = [run_lesion_map(bases, donors, out, cfg, rank=0, **kw)]
    else:
        from builder.core.workers import worker_pool

        with worker_pool(workers) as pool:
            futures = [pool.submit(run_lesion_map, bases, donors, out, cfg, rank=r, **kw) for r in range(workers)]
            parts = [f.result() for f in futures]
    for part in parts:
        summary.done += part.done
        summary.skipped += part.skipped
        summary.rejected.update(part.rejected)
    return summary.stop()


def delivery(out: StageStore) -> dict:
    """Delivered / planned per plan cell of a finished lesion-map store (see `plan.plan_delivery`)."""
    import polars as pl

    return plan_delivery(pl.read_parquet(out.root / PLAN_FILE), out.records())


def _flat(mine: list) -> Iterator[tuple[str, dict, bool]]:
    """(shard name, plan row, is the shard's last row): one progress bar over every row of this worker."""
    for name, shard in mine:
        for i, row in enumerate(shard.iter_rows(named=True)):
            yield name, row, i == shard.height - 1


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


def _map_row(row: dict, ctx: _MapContext, records: list, rejections: list, summary: StageSummary) -> None:
    """Map one plan row into `out`: a record on success, a rejection with its reason otherwise."""
    item = f"plan-row-{row['row']:06d}"
    who = f"base={row['base_id']} donor={row['donor_id']}"
    try:
        planned, donor = ctx.base_recs[row["base_id"]], ctx.donor_recs[row["donor_id"]]
        others = other_bases(ctx.groups, planned, donor, row.get("split")) if "other_base" in ctx.cfg.fallbacks else []
        mapped, base = map_with_fallbacks(planned, donor, _pixels(ctx.bases, "base"), _pixels(ctx.donors, "donor"),
                                          ctx.cfg, row["seed"], others)
    except PlacementError as e:
        rejections.append(Rejection(STAGE, item, e.reason, f"{who}: {e.detail}"))
        summary.reject(e.reason)
        return
    png = encode_png(mapped.rgb, ctx.cfg.png_level)
    lineage = {"base_id": base.sample_id, "donor_id": donor.sample_id, "plan_row": row["row"], "seed": row["seed"]}
    sample_id = make_sample_id("lesion_mapped", digest(png), lineage)
    path = ctx.out.put_image(sample_id, png)
    ctx.out.put_mask(sample_id, mapped.label_map)
    records.append(_record(sample_id, path, base, donor, mapped, row, ctx.cfg))
    summary.done += 1


def _pixels(store: StageStore, role: str) -> Pixels:
    return Pixels(image=lambda sid: _read(store, sid, role, store.read_image),
                  mask=lambda sid: _read(store, sid, role, store.read_mask))


def _read(store: StageStore, sample_id: str, role: str, read):
    try:
        return read(sample_id)
    except FileNotFoundError as e:
        raise PlacementError(f"{role}_files_missing", f"{role} image or label map missing in {store.root}: "
                                                      f"{e.filename}") from e


def _record(sample_id: str, path: str, base: Record, donor: Record, mapped, row: dict,
            cfg: LesionMapConfig) -> Record:
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
        auto_masks=merge_auto_masks(base.auto_masks, donor.auto_masks))


def _records(store: StageStore, kind: str, flag: str) -> list[Record]:
    recs = store.records()
    keep = [r for r in recs if r.kind == kind]
    if recs and not keep:
        found = sorted({r.kind for r in recs})
        raise ConfigError(f"{flag} {store.root}: no records of kind {kind!r} (found {found}); pass the "
                          f"{'healthy stage output' if kind == 'healthy' else 'real source store'} instead")
    return keep


def _write_plan(out: StageStore, plan: "polars.DataFrame", settings: dict) -> None:
    import polars as pl

    path, settings_path = out.root / PLAN_FILE, out.root / SETTINGS_FILE
    if path.exists():
        old_settings = json.loads(settings_path.read_text()) if settings_path.exists() else None
        if old_settings != settings or not pl.read_parquet(path).equals(plan):
            raise ConfigError(f"{out.root} holds a lesion-map run with other settings or inputs "
                              f"({old_settings} vs {settings}); use a new --out folder or delete that one")
        return
    out.root.mkdir(parents=True, exist_ok=True)
    # Workers of one run may all get here: each writes the same bytes through its own temp file.
    tag = f"{os.getpid()}.tmp"
    for name, write in (("plan.csv", plan.write_csv), (SETTINGS_FILE, _settings_writer(settings)),
                        (PLAN_FILE, plan.write_parquet)):  # the parquet file last: it marks a complete plan
        tmp = out.root / f".{name}.{tag}"
        write(tmp)
        os.replace(tmp, out.root / name)


def _settings_writer(settings: dict):
    return lambda path: path.write_text(json.dumps(settings, sort_keys=True, indent=1) + "\n")
