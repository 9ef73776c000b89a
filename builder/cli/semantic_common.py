"""Arguments and set-up shared by the `generate train-ti`, `train-lora` and `sample` commands (light imports)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_config_args(p: argparse.ArgumentParser, work_dir_required: bool = True) -> None:
    p.add_argument("--config", default="1.1", metavar="VERSION|YAML",
                   help="build config version or YAML file; its `semantic` section fixes every "
                        "content setting (default: 1.1)")
    p.add_argument("--work-dir", required=work_dir_required, type=Path,
                   help="folder of trained models: <disease>/ti, <disease>/lora (manifests, checkpoints)")
    p.add_argument("--model", default=None, help="base model: Hub id or local folder (default: the config's)")
    p.add_argument("--revision", default=None, help="pinned revision of --model (default: the config's)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: accelerate's choice)")
    p.add_argument("--disease", action="append", default=None, metavar="NAME",
                   help="joined disease name (repeatable; default: the config's list, else every "
                        "disease with training images)")


def add_training_args(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--real", required=True, type=Path, help="stage store of curated real images")
    p.add_argument("--splits", required=True, type=Path,
                   help="splits.csv from curation (source_id,split); only train (and validation if "
                        "configured) images are used, test images are refused")
    p.add_argument("--images", nargs="+", default=None, metavar="ID",
                   help="train on exactly these real images (sample or source ids) instead of all of "
                        "the disease's; needs exactly one --disease")


def load_semantic_config(args):
    """The config's semantic section; --model/--revision replace the base model (recorded in manifests)."""
    import dataclasses

    from builder.core.config import load_config

    cfg = load_config(args.config).semantic
    if args.model:
        cfg = dataclasses.replace(cfg, model_id=args.model, revision=args.revision)
    elif args.revision:
        cfg = dataclasses.replace(cfg, revision=args.revision)
    return cfg


def training_inputs(args):
    """(real store, splits, config, diseases) with every check done before any model loads."""
    from builder.core.errors import ConfigError
    from builder.core.store import StageStore
    from generation.semantic.build import trainable_diseases
    from generation.semantic.trainer import check_config
    from builder.core.splits_file import read_splits
    from generation.semantic.training_set import check_distinct_slugs

    cfg = load_semantic_config(args)
    check_config(cfg, args.device)
    real = StageStore(args.real)
    splits = read_splits(args.splits)
    diseases = sorted(args.disease) if args.disease else trainable_diseases(real, splits, cfg)
    check_distinct_slugs(diseases)
    if args.images is not None and len(diseases) != 1:
        raise ConfigError(f"--images needs exactly one --disease, got {diseases}")
    if not diseases:
        raise ConfigError(f"no disease has training images in {args.real}; check {args.splits}")
    return real, splits, cfg, diseases
