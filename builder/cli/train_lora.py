"""Train one LoRA per disease (DreamBooth-style, prior preservation) on top of its TI token.

Instance images: the disease's train-split real images, tone-balanced, with the token prompt.
Class images: healthy synthetics of the same tones from --healthy (train split only), else
images the base model makes from the class prompt. Writes <work-dir>/<disease>/lora/
pytorch_lora_weights.safetensors (loads with `load_lora_weights`) and manifest.json.
"""
from __future__ import annotations

from pathlib import Path

from builder.cli.semantic_common import add_training_args, training_inputs


def add_arguments(parser) -> None:
    add_training_args(parser)
    parser.add_argument("--healthy", type=Path, default=None,
                        help="stage store of healthy synthetics to use as class images")


def run(args) -> int:
    from builder.core.store import StageStore
    from generation.semantic.build import ensure_lora

    real, splits, cfg, diseases = training_inputs(args)
    healthy = StageStore(args.healthy) if args.healthy else None
    for d in diseases:
        manifest, _ = ensure_lora(real, splits, d, cfg, args.work_dir, healthy=healthy, device=args.device,
                                  only_ids=args.images)
        print(f"[train-lora] {d}: {len(manifest['images'])} instance + {len(manifest['class_images'])} "
              f"class images, loss {manifest['loss_first']} -> {manifest['loss_last']}")
    return 0
