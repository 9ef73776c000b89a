"""Automatic masks: an sDDI-form label map for every photo of a source that has none, with review sheets.

Writes OUT/<stem>.npy (0 background, 1 lesion, 2 marker, 4 skin), OUT/auto_masks.jsonl (method,
version, confidence per photo; below --min-confidence the photo is rejected mask_low_confidence)
and OUT/sheets/batch-NNNNN.png (photo, lesion + skin overlay, confidence). Ingest reads OUT as a
masks folder: pass it as --masks (for a DDI source, write into the sDDI folder itself), and rows
derived from these masks carry them in the `auto_masks` column. Rerun to resume.

  python -m builder generate masks --source DIR --out DIR                 # CPU, no weights
  python -m builder generate masks --source DIR --out DIR --backend learned --model ID --revision REV
  python -m builder generate masks --source DIR --out DIR --backend sam3 --model facebook/sam3 --revision REV \
      [--prompt "skin lesion"] --device cuda
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from builder.cli.args import COUNT
from builder.core import backends


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=Path, required=True, help="source folder (DDI or Fitzpatrick17k layout)")
    p.add_argument("--masks", type=Path, default=None,
                   help="existing hand masks (default SOURCE/masks): photos with one are left alone")
    p.add_argument("--out", type=Path, required=True, help="output folder for the automatic masks")
    p.add_argument("--config", default="1.1", help="build config version or YAML path for the masks section")
    p.add_argument("--backend", choices=backends.names("mask"), default=None,
                   help="default: the config's (cpu); with --model, the config's if it takes a model, "
                        "else the first that does (learned)")
    p.add_argument("--model", default=None, help="learned / sam3 backend: the model, Hub id or local folder")
    p.add_argument("--revision", default=None, help="learned / sam3 backend: pinned model revision (commit)")
    p.add_argument("--prompt", default=None, help="sam3 backend: text naming the lesion (default: the config's, "
                                                  "'skin lesion')")
    p.add_argument("--min-confidence", type=float, default=None, help="default: the config's (0.4)")
    p.add_argument("--batch-size", type=COUNT, default=None, help="photos per batch / contact sheet (default 16)")
    p.add_argument("--device", default="cpu", help="learned / sam3 backend: cpu | cuda | cuda:N")
    p.add_argument("--limit", type=COUNT, default=None, help="first N rows of the table only (quick runs)")


def masks_config(args: argparse.Namespace):
    from builder.core.config import load_config

    changes = {k: v for k, v in (("backend", args.backend), ("model_id", args.model), ("revision", args.revision),
                                 ("min_confidence", args.min_confidence), ("batch_size", args.batch_size),
                                 ("prompt", args.prompt))
               if v is not None}
    cfg = load_config(args.config).masks
    if args.model and not args.backend:
        changes["backend"] = backends.model_backend("mask", cfg.backend)
    return dataclasses.replace(cfg, **changes)


def run(args: argparse.Namespace) -> int:
    from curation.source.automasks.run import run_masks

    summary = run_masks(args.source, args.masks, args.out, masks_config(args), limit=args.limit,
                        device=args.device)
    print(summary.line())
    print(f"[masks] {args.out}: auto_masks.jsonl, sheets/ (look at them before building with these masks)")
    return 0
