"""Export a built version for a downstream trainer; `patchalign` writes PatchAlign24's CSV + images.

Rows the leakage audit flags are left out (listed in export_report.json), and by default only the
train and validation splits are exported: test-split synthetics derive from held-out images.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["patchalign"], help="export format")
    p.add_argument("--version", required=True, help="built version to export, e.g. 1.1")
    p.add_argument("--out", type=Path, required=True, help="destination folder (images/ + patchalign.csv)")
    p.add_argument("--build-out", type=Path, default=Path("out"),
                   help="build output root holding <version>/ (default: %(default)s)")
    p.add_argument("--folder", type=Path, default=None, help="the built version folder itself (overrides --build-out)")
    p.add_argument("--splits", default="train,validation",
                   help="comma-separated splits to export (default: %(default)s)")
    p.add_argument("--test-ids", type=Path, default=None,
                   help="real test source ids (one per line, or the build's splits.csv) for the leakage audit")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from builder.core.splits_file import read_test_ids
    from builder.core.errors import ConfigError
    from builder.export import export_patchalign

    folder = args.folder or args.build_out / args.version
    if not (folder / "manifest.json").is_file():
        raise ConfigError(f"{folder} holds no built version (no manifest.json); build it with "
                          f"`python -m builder build --version {args.version}` or pass --folder")
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "validation", "test")]
    if bad:
        raise ConfigError(f"--splits {bad}: expected train, validation and/or test")
    test_ids = read_test_ids(args.test_ids) if args.test_ids else None
    summary = export_patchalign(folder, args.out, splits=splits, test_ids=test_ids, overwrite=args.overwrite)
    print(f"exported {summary['rows']} rows of v{summary['version']} ({', '.join(splits)}) to {args.out}; "
          f"left out: {summary['excluded']['leaked']} leaked, {summary['excluded']['other_split']} other splits")
    return 0
