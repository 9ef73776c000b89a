"""Inpaint lesions away: healthy synthetics from real photos and their masks (cgDDI section 1).

Layout: the source is ingested into OUT/real/ (skipped when --source is already a stage store,
i.e. has records/), healthy images go to OUT/healthy/ (images/, masks/, records/, rejections/).
Rerun the same command to resume an interrupted run; finished shards are not redone.

Several processes (each takes a disjoint set of shards; the outputs are the same for any count):
  accelerate launch --multi_gpu --num_processes 2 -m builder generate healthy --source S --out O
(on CPU too: `accelerate launch --cpu` starts only one process.)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from builder.cli.args import COUNT
from builder.core import backends
from builder.core.errors import ConfigError

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, required=True,
                   help="source folder (DDI or Fitzpatrick17k layout) or an existing real stage store")
    p.add_argument("--masks", type=Path, default=None, help="sDDI .npy folder for a DDI-layout source (default SOURCE/masks; "
                        "Fitzpatrick17k layouts carry their masks/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (real/ and healthy/ go inside)")
    p.add_argument("--config", default="1.1", help="build config version or YAML path (default 1.1)")
    p.add_argument("--backend", choices=backends.names("inpainting"), default=None,
                   help="default: the config's (opencv); with --model, the config's if it takes a model, "
                        "else the first that does (diffusers)")
    p.add_argument("--model", default=None, help="inpainting model: Hub id or local folder")
    p.add_argument("--revision", default=None, help="pinned model revision (commit hash)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--batch-size", type=COUNT, default=4, help="images per model call (default 4)")
    p.add_argument("--shard-size", type=int, default=16, help="images per resumable shard (default 16)")


def healthy_config(args: argparse.Namespace):
    """The config's healthy section with the command line's backend and model on top."""
    from builder.core.config import load_config

    cfg = load_config(args.config).healthy
    changes = {}
    if args.model:
        changes.update(model_id=args.model, revision=args.revision,
                       backend=backends.model_backend("inpainting", cfg.backend))
    elif args.revision:
        raise ConfigError("--revision given without --model; pass --model ID --revision REV")
    if args.backend:
        changes["backend"] = args.backend
    return dataclasses.replace(cfg, **changes)


def distributed(device: str):
    """(rank, world_size, device, state): from accelerate when launched by it, else a single process."""
    if "WORLD_SIZE" not in os.environ and not any(k.startswith("ACCELERATE_") for k in os.environ):
        return 0, 1, device, None
    from accelerate import PartialState

    state = PartialState(cpu=device == "cpu")
    if state.num_processes == 1 and os.environ.get("ACCELERATE_USE_CPU"):
        log.warning("accelerate launch --cpu starts one process; for several CPU processes use "
                    "accelerate launch --multi_gpu --num_processes N (with --device cpu)")
    if device.startswith("cuda") and state.num_processes > 1:
        device = str(state.device)  # one GPU per process
    return state.process_index, state.num_processes, device, state


def real_store(args: argparse.Namespace, state):
    """The real stage store: --source itself if it is one, else the source ingested into OUT/real."""
    from builder.core.store import StageStore

    if (args.source / "records").is_dir():
        return StageStore(args.source)
    if not args.source.is_dir():
        raise ConfigError(f"--source {args.source} is not a folder; give a DDI or Fitzpatrick17k "
                          "source folder or a real stage store")
    from curation.source.ingest import ingest_source

    real = StageStore(args.out / "real")
    if state is None or state.is_main_process:
        from builder.core.progress import say

        say(ingest_source(args.source, args.masks, real).line())
    if state is not None:
        state.wait_for_everyone()  # every rank shards the same, complete real store
    return real


def run(args: argparse.Namespace) -> int:
    from builder.core.store import StageStore
    from generation.healthy.stage import check_inputs, run_healthy

    cfg = healthy_config(args)
    # Validate before any ingest, import of torch or model load.
    check_inputs(cfg, args.device, args.batch_size, 0, 1, args.shard_size)
    rank, world, device, state = distributed(args.device)
    real = real_store(args, state)
    out = StageStore(args.out / "healthy")
    summary = run_healthy(real, out, cfg, device=device, batch_size=args.batch_size, rank=rank,
                          world_size=world, shard_size=args.shard_size)
    print(summary.line() if world == 1 else f"rank {rank}/{world}: {summary.line()}")
    if state is not None:
        state.wait_for_everyone()
    if rank == 0:
        print(totals(out))
    return 0


def totals(out) -> str:
    """The whole store's counts (all ranks, all runs): the figure that matters after a resume."""
    import collections

    reasons = collections.Counter(r.reason for r in out.rejections())
    rej = ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())) or "none"
    return (f"[healthy] total in {out.root}: {len(out.records())} images, "
            f"{sum(reasons.values())} rejected ({rej})")
