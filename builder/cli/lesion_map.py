"""Lesion-mapped synthetics: move real lesions onto healthy skin of other tones (method section 2).

Plans (base, donor) pairs balanced over base tone x donor disease x donor tone, writes the plan to
OUT/plan.parquet and OUT/plan.csv, then maps each pair: the donor's lesion is placed where it lies
entirely inside the base's skin with the first margin in `pads` that fits, feathered and composited.
Pairs where nothing fits become rejections (OUT/rejections/). Rerun the same command to resume.

examples:
  python -m builder generate lesion-map --bases work/healthy --donors work/real --out work/lesion_map --plan-only
  python -m builder generate lesion-map --bases work/healthy --donors work/real --out work/lesion_map --budget 600
  python -m builder generate lesion-map ... --splits work/splits.csv --workers 0   # within splits, all cores
"""
from __future__ import annotations

import argparse

from builder.cli.args import COUNT, whole


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bases", required=True, metavar="DIR", help="store of healthy synthetics (kind 'healthy')")
    p.add_argument("--donors", required=True, metavar="DIR", help="store of real images with lesion masks")
    p.add_argument("--out", required=True, metavar="DIR", help="output store (plan, images, masks, records)")
    p.add_argument("--config", default="1.1", metavar="VERSION",
                   help="build config version or YAML path whose lesion_map section is used (default: 1.1)")
    p.add_argument("--budget", type=whole(0), default=None, metavar="N", help="images to plan (default: config)")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="plan seed (default: config)")
    p.add_argument("--splits", metavar="CSV", default=None,
                   help="source_id,split table (the build's splits.csv): pair bases and donors only "
                        "within one split, so no image mixes a train and a test source")
    p.add_argument("--plan-only", action="store_true", help="write and summarize the plan, map nothing")
    p.add_argument("--workers", type=COUNT, default=1, metavar="N",
                   help="processes on this machine, same bytes as one (default: 1; 0 = all cores)")
    p.add_argument("--rank", type=int, default=0, help="this worker's index (default: 0)")
    p.add_argument("--world-size", type=int, default=1, help="number of workers (default: 1)")
    p.add_argument("--shard-size", type=int, default=64, help="plan rows per shard (default: 64)")


def run(args: argparse.Namespace) -> int:
    from builder.core.config import load_config
    from builder.core.store import StageStore
    from generation.lesion_map.stage import plan_lesion_map, plan_summary, run_lesion_map

    cfg = load_config(args.config).lesion_map
    stores = StageStore(args.bases), StageStore(args.donors), StageStore(args.out)
    for flag, store in (("--bases", stores[0]), ("--donors", stores[1])):
        if not (store.root / "records").is_dir():
            from builder.core.errors import ConfigError

            raise ConfigError(f"{flag} {store.root}: not a stage store (no records/ folder); pass the "
                              "output folder of an earlier stage")
    from builder.core.splits_file import read_splits

    split_of = read_splits(args.splits) if args.splits else None
    plan, _, _ = plan_lesion_map(*stores, cfg, budget=args.budget, seed=args.seed, shard_size=args.shard_size,
                                 split_of=split_of)
    from builder.core.progress import is_quiet, say

    summary, written = plan_summary(plan), f"plan written to {stores[2].root / 'plan.csv'}"
    if args.plan_only:  # the plan is this run's result: under -q its headline line is the final summary
        print(f"{summary.splitlines()[0]}; {written}" if is_quiet() else f"{summary}\n{written}")
        return 0
    say(summary, written)
    if args.workers != 1:
        if args.world_size != 1:
            from builder.core.errors import ConfigError

            raise ConfigError(f"--workers {args.workers} with --world-size {args.world_size}: use --workers on "
                              "one machine, or --rank/--world-size to split a run across machines, not both")
        from generation.lesion_map.stage import run_lesion_map_pool

        summary = run_lesion_map_pool(*stores, cfg, workers=args.workers or None, budget=args.budget,
                                      seed=args.seed, shard_size=args.shard_size, split_of=split_of)
    else:
        summary = run_lesion_map(*stores, cfg, budget=args.budget, seed=args.seed, rank=args.rank,
                                 world_size=args.world_size, shard_size=args.shard_size, split_of=split_of)
    print(summary.line())
    return 0
