"""Train one textual-inversion token per disease (`<disease-class>`) on train-split real images.

Writes <work-dir>/<disease>/ti/learned_embeds.safetensors (loads with `load_textual_inversion`)
and manifest.json listing every image id and hash the token saw. Finished models with the same
inputs are skipped; an interrupted run resumes from its last checkpoint. Multi-GPU:
`accelerate launch -m builder generate train-ti ...`.
"""
from __future__ import annotations

from builder.cli.semantic_common import add_training_args, training_inputs


def add_arguments(parser) -> None:
    add_training_args(parser)


def run(args) -> int:
    from generation.semantic.build import ensure_ti

    real, splits, cfg, diseases = training_inputs(args)
    for d in diseases:
        manifest, _ = ensure_ti(real, splits, d, cfg, args.work_dir, device=args.device, only_ids=args.images)
        print(f"[train-ti] {d}: {manifest['token']} from {len(manifest['images'])} images, "
              f"loss {manifest['loss_first']} -> {manifest['loss_last']}")
    return 0
