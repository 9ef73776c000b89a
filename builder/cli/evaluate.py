"""Evaluate a built version per skin tone: fidelity (Frechet / KID in a pinned model's feature space) and
utility (malignancy ROC-AUC on the real test split, real vs real + synthetic train images).

Writes evaluation.json and plots/evaluation.png beside the shards and a section into the card; the
shards are never changed, and the manifest lists the new files with their sha256. Features and
classifier runs are cached in the work folder: an interrupted run resumes, a rerun is instant.

  python -m builder evaluate --version 1.1 --model facebook/dinov2-small --revision <commit> --device cuda
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", required=True, help="built version to evaluate, e.g. 1.1")
    p.add_argument("--build-out", type=Path, default=Path("out"),
                   help="build output root holding <version>/ and .work/ (default: %(default)s)")
    p.add_argument("--folder", type=Path, default=None, help="the built version folder itself (overrides --build-out)")
    p.add_argument("--real", type=Path, default=None,
                   help="real stage store with the source photos (default: <build-out>/.work/<version>/real)")
    p.add_argument("--splits", type=Path, default=None,
                   help="splits.csv of the build (default: <build-out>/.work/<version>/splits.csv)")
    p.add_argument("--model", required=True, help="feature model: Hub id (with --revision) or local folder")
    p.add_argument("--revision", default=None, help="pinned commit of --model")
    p.add_argument("--classifier", default=None, help="backbone for the utility classifier (default: --model)")
    p.add_argument("--classifier-revision", default=None, help="pinned commit of --classifier")
    p.add_argument("--clip-model", default=None,
                   help="CLIP-style image-text model: prompt agreement of semantic rows (optional)")
    p.add_argument("--clip-revision", default=None, help="pinned commit of --clip-model")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per classifier (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="classifier batch size (default: %(default)s)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per CI (default: %(default)s)")
    p.add_argument("--specificity", type=float, default=0.9,
                   help="report sensitivity at this specificity (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the classifier and the bootstrap (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from builder.core.errors import ConfigError
    from builder.published.evaluate.run import EvalSettings, run_evaluation

    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise ConfigError(f"--device {args.device!r}: expected cpu, cuda or cuda:N")
    settings = EvalSettings(model=args.model, revision=args.revision, classifier=args.classifier,
                            classifier_revision=args.classifier_revision, steps=args.steps,
                            batch_size=args.batch_size, n_boot=args.n_boot, specificity=args.specificity,
                            seed=args.seed, clip_model=args.clip_model, clip_revision=args.clip_revision)
    from builder.core.layout import check_version_name

    check_version_name(args.version)
    folder = args.folder or args.build_out / args.version
    work = None if args.folder else args.build_out / ".work" / args.version
    result = run_evaluation(folder, settings, real=args.real, splits=args.splits, work=work, device=args.device)
    for label in ("real", "real+synthetic"):
        r = result["utility"][label]
        cells = "  ".join(f"{g}={r[g]['auroc'] if r[g]['auroc'] is not None else 'n/a'}"
                          for g in ("light", "medium", "dark", "overall"))
        print(f"ROC-AUC {label:<15} {cells}  gap={r['gap']}")
    print(f"wrote {folder / 'evaluation.json'}, {folder / 'plots/evaluation.png'} and the card section")
    return 0
