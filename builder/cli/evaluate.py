"""Evaluate a built version per skin tone: the paper's tables (imbalance; Inception-v3 FID, KID and LPIPS per
kind x tone; FID of augmentations of the real photos), fidelity in a pinned model's feature space, and
utility (malignancy ROC-AUC on the real test split, real vs real + synthetic train images).

Writes evaluation.json and plots/evaluation.png beside the shards and a section into the card; the
shards are never changed, and the manifest lists the new files with their sha256. Features and
classifier runs are cached in the work folder: an interrupted run resumes, a rerun is instant.

  python -m builder evaluate --version 1.1 --model facebook/dinov2-small --revision <commit> --device cuda \
      --inception-weights weights-inception-2015-12-05-6726825d.pth --lpips-weights alexnet-owt-7be5be79.pth
"""
from __future__ import annotations

import argparse
from pathlib import Path

from builder.cli.common import add_build_out, layout_of


def add_arguments(p: argparse.ArgumentParser) -> None:

    p.add_argument("--version", required=True, help="built version to evaluate, e.g. 1.1")
    add_build_out(p)
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
    p.add_argument("--inception-weights", default=None,
                   help="Inception-v3 FID weights file (torch-fidelity's weights-inception-2015-12-05-6726825d.pth; "
                        "default: the library downloads it; where neither works, FID/KID are marked not computed)")
    p.add_argument("--lpips-weights", default=None,
                   help="torchvision's AlexNet weights file for LPIPS (alexnet-owt-7be5be79.pth; default: downloaded)")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps per classifier (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="classifier batch size (default: %(default)s)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per CI (default: %(default)s)")
    p.add_argument("--specificity", type=float, default=0.9,
                   help="report sensitivity at this specificity (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the classifier and the bootstrap (default: %(default)s)")
    p.add_argument("--protocol", action="store_true",
                   help="also run the paper's classifier protocol (ViT-B/16 as PatchAlign24 trains it, holdout seeds "
                        "36-40; accuracy, AUROC per tone, PQD/DPM/EOM): sized for a GPU")
    p.add_argument("--protocol-backbone", default="google/vit-base-patch16-224-in21k",
                   help="backbone of --protocol (default: %(default)s)")
    p.add_argument("--protocol-revision", default=None, help="pinned commit of --protocol-backbone")
    p.add_argument("--protocol-epochs", type=int, default=20, help="--protocol training epochs (default: %(default)s)")
    p.add_argument("--protocol-finetune-epochs", type=int, default=5,
                   help="--protocol epochs of fine-tuning at 1e-5 (the paper does not state it; default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")


def run(args: argparse.Namespace) -> int:

    from builder.core.errors import ConfigError
    from builder.published.evaluate.run import EvalSettings, run_evaluation

    if args.device not in ("cpu", "cuda") and not args.device.startswith("cuda:"):
        raise ConfigError(f"--device {args.device!r}: expected cpu, cuda or cuda:N")
    settings = EvalSettings(model=args.model, revision=args.revision, classifier=args.classifier,
                            classifier_revision=args.classifier_revision, steps=args.steps,
                            batch_size=args.batch_size, n_boot=args.n_boot, specificity=args.specificity,
                            seed=args.seed, clip_model=args.clip_model, clip_revision=args.clip_revision,
                            inception_weights=args.inception_weights, lpips_weights=args.lpips_weights)
    protocol = None
    if args.protocol:
        from builder.published.evaluate.protocol import ProtocolSettings

        protocol = ProtocolSettings(backbone=args.protocol_backbone, revision=args.protocol_revision,
                                    epochs=args.protocol_epochs, finetune_epochs=args.protocol_finetune_epochs)
    layout = layout_of(args)
    folder = args.folder or layout.version_dir
    work = None if args.folder else layout.work
    result = run_evaluation(folder, settings, real=args.real, splits=args.splits, work=work, device=args.device,
                            protocol=protocol)
    for label in ("real", "real+synthetic"):
        r = result["utility"][label]
        cells = "  ".join(f"{g}={r[g]['auroc'] if r[g]['auroc'] is not None else 'n/a'}"
                          for g in ("light", "medium", "dark", "overall"))
        print(f"ROC-AUC {label:<15} {cells}  gap={r['gap']}")
    print(f"wrote {folder / 'evaluation.json'}, {folder / 'plots/evaluation.png'} and the card section")
    return 0
