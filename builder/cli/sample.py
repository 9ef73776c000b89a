"""Sample semantic synthetics: base model + each disease's TI and LoRA, over disease x skin tone.

Every sample gets its own seed and full lineage (model, revision, adapter hashes, the real images
its models saw). Shards are the unit of resume (rerun the same command after a kill) and of
process splits: `accelerate launch --num_processes N -m builder generate sample ...` gives the
same set as one process.
"""
from __future__ import annotations

from pathlib import Path

from builder.cli.semantic_common import add_config_args, load_semantic_config


def add_arguments(parser) -> None:
    add_config_args(parser)
    parser.add_argument("--out", required=True, type=Path, help="stage store to write samples to")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--budget", type=int, default=None,
                       help="total images, split evenly over disease x tone (default: the config's budget)")
    count.add_argument("--per-cell", type=int, default=None, help="images per disease x tone")


def run(args) -> int:
    from builder.core.errors import ConfigError
    from builder.core.store import StageStore
    from generation.semantic.build import process_slot
    from generation.semantic.sampling import load_model, make_plan, sample
    from generation.semantic.trainer import check_config

    cfg = load_semantic_config(args)
    check_config(cfg, args.device)
    diseases = sorted(args.disease or cfg.diseases or _trained(args.work_dir))
    models = {d: load_model(args.work_dir, d) for d in diseases}
    budget = args.budget if args.per_cell is None and args.budget is not None else (
        None if args.per_cell is not None else cfg.budget)
    if budget is not None and budget < 1:
        raise ConfigError(f"sampling budget is {budget}; pass --budget N or --per-cell N (N >= 1)")
    plan = make_plan(diseases, budget=budget, per_cell=args.per_cell)
    rank, world = process_slot(args.device)
    summary = sample(StageStore(args.out), models, plan, cfg, device=args.device, rank=rank, world_size=world)
    print(f"{summary.line()} (process {rank + 1}/{world})")
    return 0


def _trained(work_dir: Path) -> list[str]:
    """Diseases with a finished LoRA in the work dir (their manifests name them)."""
    import json

    return sorted(json.loads(p.read_text())["disease"] for p in Path(work_dir).glob("*/lora/manifest.json"))
