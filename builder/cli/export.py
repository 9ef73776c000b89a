"""`export patchalign|fairdisco`: train + test CSVs in the trainer's own DDI encodings, images under one root.

Train: the train and validation synthetics (and with `--real DIR` the real train rows, linked);
test: the held-out real rows (with `--real`), else the test-split synthetics. Rows the leakage
audit flags, and any row derived from a held-out image, never reach train.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["patchalign", "fairdisco"],
                   help="trainer: patchalign (aayushmanace/PatchAlign24) or fairdisco (siyi-wind/FairDisCo)")
    p.add_argument("--version", required=True, help="built version to export, e.g. 1.1")
    p.add_argument("--out", type=Path, required=True, help="destination folder (train.csv, test.csv, images/)")
    p.add_argument("--real", type=Path, default=None,
                   help="your local DDI folder (ddi_metadata.csv + photos): real rows join both CSVs, "
                        "photos linked, never copied")
    p.add_argument("--image-size", type=int, default=None,
                   help="resize synthetic images to SIZE x SIZE (shorter side, centre crop); default: as published")
    p.add_argument("--build-out", type=Path, default=Path("out"),
                   help="build output root holding <version>/ (default: %(default)s)")
    p.add_argument("--folder", type=Path, default=None, help="the built version folder itself (overrides --build-out)")
    p.add_argument("--splits", default="train,validation",
                   help="comma-separated splits whose synthetics go into train.csv (default: %(default)s)")
    p.add_argument("--test-ids", type=Path, default=None,
                   help="held-out source ids (one per line, or the build's splits.csv; default: "
                        "<build-out>/.work/<version>/splits.csv when it exists)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    from builder.core.splits_file import read_test_ids
    from builder.core.errors import ConfigError
    from builder.published.export import export

    from builder.core.layout import check_version_name

    check_version_name(args.version)
    folder = args.folder or args.build_out / args.version
    if not (folder / "manifest.json").is_file():
        raise ConfigError(f"{folder} holds no built version (no manifest.json); build it with "
                          f"`python -m builder build --version {args.version}` or pass --folder")
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "validation")]
    if bad:
        raise ConfigError(f"--splits {bad}: expected train and/or validation (test rows never train)")
    if args.real is not None and not (args.real / "ddi_metadata.csv").is_file():
        raise ConfigError(f"--real {args.real}: no ddi_metadata.csv there; pass your DDI folder")
    ids_file = args.test_ids
    default = args.build_out / ".work" / args.version / "splits.csv"
    if ids_file is None and args.folder is None and default.is_file():
        ids_file = default
    test_ids = read_test_ids(ids_file) if ids_file else None
    s = export(folder, args.out, args.format, real=args.real, train_splits=splits, test_ids=test_ids,
               image_size=args.image_size, overwrite=args.overwrite)
    print(f"exported v{s['version']} for {args.format}: train.csv {s['train_rows']} rows {s['train_by_kind']}, "
          f"test.csv {s['test_rows']} rows {s['test_by_kind']}; left out {s['excluded']}; "
          f"see {args.out}/TRAINING.md")
    return 0
