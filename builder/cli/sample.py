"""Sample semantic synthetics: base model + each disease's TI and LoRA, over disease x skin tone.

`semantic.sampling: img2img` (the paper) starts every sample from a healthy synthetic of `--healthy`
(strength `semantic.strength`): the plan is disease x healthy image x prompted tone x count, and each row
names its healthy image in `parent_id` and that image's real sources in `source_ids`.

Every sample gets its own seed and full lineage (model, revision, adapter hashes, the real images
its models saw). Shards are the unit of resume (rerun the same command after a kill) and of
process splits: `accelerate launch --num_processes N -m builder generate sample ...` gives the
same set as one process.

`--released SPEC` (repeatable) samples from cgDDI's released per-disease models instead of the
work dir's: SPEC is a Hub model id with its revision (`hcarrion/melanoma@<commit or tag>`) or a
local copy of one, holding `learned_embeds.safetensors` and `pytorch_lora_weights.safetensors`.
Those models saw every DDI photo of their disease (no holdout), so each row's `source_ids` lists
them all (`--metadata` gives DDI's table) and `params.released_model` names the repo and commit.
"""
from __future__ import annotations

from pathlib import Path

from builder.cli.semantic_common import add_config_args, load_semantic_config


def add_arguments(parser) -> None:
    add_config_args(parser, work_dir_required=False)
    parser.add_argument("--released", action="append", default=None, metavar="SPEC",
                        help="a released per-disease model: Hub id@revision or local folder (repeatable; "
                             "needs --metadata); replaces --work-dir's models")
    parser.add_argument("--metadata", type=Path, default=None,
                        help="DDI's ddi_metadata.csv: the photos each released model saw")
    parser.add_argument("--healthy", type=Path, default=None,
                        help="healthy stage store whose rows start image-to-image samples (semantic.sampling "
                             "img2img: the plan is disease x healthy image x tone x count)")
    parser.add_argument("--out", required=True, type=Path, help="stage store to write samples to")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--budget", type=int, default=None,
                       help="total images, split evenly over disease x tone (default: the config's budget)")
    count.add_argument("--per-cell", type=int, default=None, help="images per disease x tone")


def run(args) -> int:
    from builder.core.errors import ConfigError
    from builder.core.store import StageStore
    from generation.semantic.build import process_slot
    from generation.semantic.img2img import healthy_prompts
    from generation.semantic.sampling import load_model, make_plan, sample
    from generation.semantic.trainer import check_config

    cfg = load_semantic_config(args)
    check_config(cfg, args.device)
    if args.released:
        models = _released(args)
        diseases = sorted(models)
    else:
        if args.work_dir is None:
            raise ConfigError("generate sample needs --work-dir (trained models) or --released SPEC")
        diseases = sorted(args.disease or cfg.diseases or _trained(args.work_dir))
        models = {d: load_model(args.work_dir, d) for d in diseases}
    budget = args.budget if args.per_cell is None and args.budget is not None else (
        None if args.per_cell is not None else cfg.budget)
    if budget is not None and budget < 1:
        raise ConfigError(f"sampling budget is {budget}; pass --budget N or --per-cell N (N >= 1)")
    healthy = StageStore(args.healthy) if args.healthy else None
    if healthy is not None and cfg.sampling != "img2img":
        raise ConfigError(f"--healthy given, but semantic.sampling is {cfg.sampling!r}; set it to img2img in the "
                          "config to sample from healthy synthetics, or drop --healthy")
    if cfg.cross_source != "any" and healthy is not None:  # never silently every pair
        raise ConfigError(f"semantic.cross_source={cfg.cross_source!r} is applied by `build`, which knows each "
                          "disease's sources; generate sample pairs every disease with every healthy image: pass a "
                          "--healthy store of the prompts' source only, with semantic.cross_source: any")
    starts = sorted(healthy_prompts(healthy)) if cfg.sampling == "img2img" else None
    plan = make_plan(diseases, budget=budget, per_cell=args.per_cell, healthy=starts)
    rank, world = process_slot(args.device)
    diseases_of = {s: m.disease for m in models.values() for s in m.source_ids} if args.released else None
    summary = sample(StageStore(args.out), models, plan, cfg, device=args.device, rank=rank, world_size=world,
                     healthy=healthy, photo_diseases=diseases_of)
    print(f"{summary.line()} (process {rank + 1}/{world})")
    return 0


def _trained(work_dir: Path) -> list[str]:
    """Diseases with a finished LoRA in the work dir (their manifests name them)."""
    import json

    return sorted(json.loads(p.read_text())["disease"] for p in Path(work_dir).glob("*/lora/manifest.json"))


def _released(args) -> dict:
    """disease -> released model, for every --released SPEC (one per disease)."""
    from builder.core.errors import ConfigError
    from builder.published.release.index import read_photos
    from builder.published.release.names import SOURCE
    from generation.semantic.released import load_released_models

    if args.metadata is None:
        raise ConfigError("--released needs --metadata (DDI's ddi_metadata.csv): a released model's lineage is "
                          "every DDI photo of its disease")
    photos_of: dict[str, list[tuple[str, bool]]] = {}
    for p in read_photos(args.metadata).values():
        photos_of.setdefault(p.disease, []).append((f"{SOURCE}:{p.stem}", p.malignant))
    return load_released_models(args.released, photos_of, args.disease, "--released", "--disease")
