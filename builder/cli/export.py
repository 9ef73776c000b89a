"""`export patchalign|fairdisco|imagefolder|webdataset`: hand-offs of a built version.

patchalign / fairdisco: every file the trainer's DDI (or `--layout fitzpatrick17k`) script reads,
in its own encodings. imagefolder / webdataset: the version's own splits as an ImageFolder tree or
WebDataset tar shards, labelled by `--label` (`builder.published.handoffs`).

Train: the train and validation lesion synthetics (and with `--real DIR` the real train rows,
linked); test: the held-out real rows (with `--real`), else the test-split synthetics. Healthy
rows only with `--include-healthy`. `--holdout-seed N` (with `--real`) or `--test-ids FILE`
choose another holdout: rows are placed again from their lineage. `--rule strict|paper` picks the
leakage rule (default: the one the version was built with; another rule places every row again):
strict, no train row derives from a held-out image in any role; the paper's, a lesion map follows
its donor and a semantic image its (disease, healthy prompt) pair. Rows the leakage audit flags
under that rule never reach train. A version of several sources: `--sources` keeps the rows of some
of them (`builder.published.export_sources`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from builder.cli.common import add_build_out, layout_of


REAL_TABLES = ("ddi_metadata.csv", "metadata.csv", "fitzpatrick17k.csv")
GENERIC = ("imagefolder", "webdataset")
TRAINER_ONLY = ("real", "image_size", "test_ids", "holdout_seed", "tone_holdout", "rule", "sources")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["patchalign", "fairdisco", *GENERIC],
                   help="trainer: patchalign (aayushmanace/PatchAlign24) or fairdisco (siyi-wind/FairDisCo); "
                        "or a generic hand-off: imagefolder (<split>/<label>/<id>.png + metadata.csv) or "
                        "webdataset (<split>-NNNNNN.tar shards)")
    p.add_argument("--version", required=True, help="built version to export, e.g. 1.1")
    p.add_argument("--out", type=Path, required=True, help="destination folder (train.csv, test.csv, images/)")
    p.add_argument("--real", type=Path, default=None,
                   help="your local DDI folder (ddi_metadata.csv + photos) or Fitzpatrick17k folder "
                        "(metadata.csv or fitzpatrick17k.csv + images/): real rows join both CSVs, photos "
                        "linked, never copied")
    p.add_argument("--image-size", type=int, default=None,
                   help="resize synthetic images to SIZE x SIZE (shorter side, centre crop); default: as published")
    add_build_out(p)
    p.add_argument("--folder", type=Path, default=None, help="the built version folder itself (overrides --build-out)")
    p.add_argument("--splits", default="train,validation",
                   help="comma-separated splits whose synthetics go into train.csv (default: %(default)s)")
    p.add_argument("--test-ids", type=Path, default=None,
                   help="choose the holdout: these source ids (one per line, or a splits.csv) are test, "
                        "replacing the build's test set; every row is placed again from its lineage "
                        "(default: the build's own, <build-out>/.work/<version>/splits.csv when it exists)")
    p.add_argument("--holdout-seed", type=int, default=None,
                   help="choose the holdout: train_test_split(test_size=0.2, random_state=SEED) over your "
                        "--real table, as PatchAlign24 draws it (the paper's five folds: seeds 36-40)")
    p.add_argument("--layout", choices=["ddi", "fitzpatrick17k"], default="ddi",
                   help="the trainer's DDI script (default) or its Fitzpatrick17k script "
                        "(fitzpatrick17k_known_code.csv, <hasher>.jpg, types 1-6; a Fitzpatrick17k build)")
    p.add_argument("--tone-holdout", choices=["a12", "a34", "a56"], default=None,
                   help="choose the holdout: PatchAlign24's out-of-domain split, train on one tone group "
                        "(a12 light, a34 medium, a56 dark), test on the others")
    p.add_argument("--rule", choices=["strict", "paper"], default=None,
                   help="leakage rule placing the rows: strict (a row is test when any photo it derives from is "
                        "held out) or paper (a lesion map's donor, a semantic image's (disease, healthy prompt) "
                        "pair decide); default: the rule the version was built with")
    p.add_argument("--sources", default=None, metavar="NAME[,NAME]",
                   help="a version built from several sources: keep the rows whose whole lineage (base, donor, "
                        "training photos) lies in these sources, e.g. fitz17k (default: every row)")
    p.add_argument("--include-healthy", action="store_true",
                   help="also export healthy-skin rows (disease 'healthy', high 0); default: lesions only")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--label", default="malignancy", choices=["malignancy", "disease", "skin_tone"],
                   help="imagefolder / webdataset: the class of each image (default: %(default)s)")
    p.add_argument("--shard-mb", type=int, default=256,
                   help="webdataset: largest shard in MB (default: %(default)s, one sequential read when streaming)")
    p.add_argument("--shard-count", type=int, default=10000,
                   help="webdataset: most samples per shard (default: %(default)s)")
    p.add_argument("--min-training-photos", type=int, default=None, metavar="N",
                   help="leave out semantic rows of diseases whose models trained on fewer than N photos "
                        "(the paper's classification subset: 11, i.e. more than 10)")


def run(args: argparse.Namespace) -> int:

    from builder.core.splits_file import read_test_ids
    from builder.core.errors import ConfigError
    from builder.published.export import export

    layout = layout_of(args)
    folder = args.folder or layout.version_dir
    if not (folder / "manifest.json").is_file():
        raise ConfigError(f"{folder} holds no built version (no manifest.json); build it with "
                          f"`python -m builder build --version {args.version}` or pass --folder")
    if args.min_training_photos is not None and args.min_training_photos < 1:
        raise ConfigError(f"--min-training-photos {args.min_training_photos}: expected a count >= 1 (the paper: 11)")
    if args.format in GENERIC:
        return _generic(args, folder)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "validation")]
    if bad:
        raise ConfigError(f"--splits {bad}: expected train and/or validation (test rows never train)")
    if args.real is not None and not any((args.real / t).is_file() for t in REAL_TABLES):
        raise ConfigError(f"--real {args.real}: no {' or '.join(REAL_TABLES)} there; pass your DDI or "
                          "Fitzpatrick17k folder")
    default = layout.splits_csv
    build_ids = default if args.test_ids is None and args.folder is None and default.is_file() else None
    s = export(folder, args.out, args.format, real=args.real, train_splits=splits,
               test_ids=read_test_ids(build_ids) if build_ids else None, image_size=args.image_size,
               overwrite=args.overwrite, include_healthy=args.include_healthy, holdout_seed=args.holdout_seed,
               holdout_ids=read_test_ids(args.test_ids) if args.test_ids else None, layout=args.layout,
               tone_holdout=args.tone_holdout, min_training_photos=args.min_training_photos, rule=args.rule,
               sources=tuple(n.strip() for n in args.sources.split(",") if n.strip()) if args.sources else None)
    print(f"exported v{s['version']} for {args.format} ({args.layout} layout): "
          f"train.csv {s['train_rows']} rows {s['train_by_kind']}, "
          f"test.csv {s['test_rows']} rows {s['test_by_kind']} (holdout: {s['holdout']['name']}; "
          f"{s['rule']} leakage rule); "
          f"left out {s['excluded']}; "
          f"see {args.out}/TRAINING.md")
    return 0


def _generic(args: argparse.Namespace, folder: Path) -> int:
    from builder.core.errors import ConfigError
    from builder.published.handoffs import export_imagefolder, export_webdataset

    given = [f"--{k.replace('_', '-')}" for k in TRAINER_ONLY if getattr(args, k) is not None]
    if given or args.layout != "ddi":
        raise ConfigError(f"{', '.join(given or ['--layout'])}: only for the trainer exports (patchalign, "
                          f"fairdisco); export {args.format} keeps the version's own splits")
    opts = dict(label=args.label, include_healthy=args.include_healthy, overwrite=args.overwrite)
    if args.format == "webdataset":
        s = export_webdataset(folder, args.out, shard_mb=args.shard_mb, shard_count=args.shard_count, **opts)
    else:
        s = export_imagefolder(folder, args.out, **opts)
    print(f"exported {s['rows']} rows as {args.format} by {s['label']} to {args.out}: {s['by_split']}")
    return 0
