"""Curate a source: validated ingest, lineage-grouped stratified splits, leakage removal, de-duplication.

Writes into --out: real/ (the ingested store; a rerun resumes), splits.csv (source_id,split),
records.jsonl (curated synthetics with their splits), rejections.csv (every dropped input with
its reason), duplicates.csv (dup_of per dropped copy), leakage_report.csv and curation.json
(counts that reconcile: in = kept + rejected, per step).

examples:
  python -m builder curate --source ../shared/data/fitz17k_lesions --out out/curated
  python -m builder curate --source DDI --masks sddi_masks --out out/c --test-ids test.txt \\
      --synthetic healthy=out/.work/1.1/healthy --synthetic lesion_mapped=out/.work/1.1/lesion_mapped
"""
from __future__ import annotations

import argparse
from pathlib import Path

from builder.cli.args import COUNT


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", type=Path, action="append",
                     help="source folder: ddi_metadata.csv + images (DDI) or metadata.csv + images/ + masks/; "
                          "repeat it for several sources (one store, each source keeps its holdout)")
    src.add_argument("--real", type=Path, help="an already ingested real store, e.g. out/.work/1.1/real")
    p.add_argument("--masks", type=Path, action="append",
                   help="mask folder (default: <source>/masks); several --source: one per source in order, or none")
    p.add_argument("--source-name", action="append",
                   help="prefix of source ids (default: ddi or fitz17k by layout); several --source: as --masks")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--version", default="1.1", help="build config version or YAML path (curation section)")
    p.add_argument("--synthetic", action="append", default=[], metavar="KIND=STORE",
                   help="a stage store of synthetics to curate, e.g. healthy=out/.work/1.1/healthy (repeatable)")
    p.add_argument("--training-manifest", action="append", default=[], type=Path, metavar="JSON",
                   help="model/adapter id -> real source ids it was trained on (semantic synthetics)")
    p.add_argument("--split-method", choices=("stratified", "test_ids", "patchalign24"),
                   help="override curation.split_method")
    p.add_argument("--test-ids", type=Path, help="file of test source ids (implies --split-method test_ids)")
    p.add_argument("--workers", type=COUNT, default=None, help="hashing processes (default: all cores)")
    p.add_argument("--limit", type=COUNT, help="only the first N metadata rows (quick runs)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from builder.core.config import load_config
    from curation.curate_run import CurateOptions, curate_source

    cfg = load_config(args.version).curation
    if args.test_ids:
        cfg = dataclasses.replace(cfg, split_method="test_ids", test_ids_file=str(args.test_ids))
    elif args.split_method:
        cfg = dataclasses.replace(cfg, split_method=args.split_method)
    one = lambda given: None if not given else given[0] if len(given) == 1 else tuple(given)  # noqa: E731
    opts = CurateOptions(source=one(args.source), real=args.real, masks=one(args.masks),
                         source_name=one(args.source_name), out=args.out,
                         synthetic=_parse_synthetic(args.synthetic), manifests=list(args.training_manifest),
                         workers=args.workers, limit=args.limit)
    summary = curate_source(cfg, opts)
    from builder.core.progress import is_quiet

    if is_quiet():  # the counts and where they went, not the split table
        lines = summary.splitlines()
        summary = "\n".join(lines[:lines.index("")] + lines[-1:]) if "" in lines else summary
    print(summary)
    return 0


def _parse_synthetic(items: list[str]) -> dict[str, Path]:
    from builder.core.errors import ConfigError
    from builder.core.schema import KINDS

    out = {}
    for item in items:
        kind, sep, path = item.partition("=")
        if not sep or kind not in KINDS[1:] or not Path(path).is_dir():
            raise ConfigError(f"--synthetic {item!r}: expected KIND=STORE with KIND one of {KINDS[1:]} "
                              "and STORE an existing stage-store folder")
        out[kind] = Path(path)
    return out
