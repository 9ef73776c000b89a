"""The semantic stage end to end: train each disease's TI and LoRA if needed, then sample the budget."""
from __future__ import annotations

import logging
from pathlib import Path

from builder.core.config import SemanticConfig
from builder.core.directions import allows, source_of
from builder.core.errors import ConfigError
from builder.core.progress import StageSummary
from builder.core.store import StageStore
from generation.semantic import trainer as T
from generation.semantic.img2img import healthy_prompts
from generation.semantic.lora import (choose_class_images, class_reader, generate_prior_images,
                                      train_lora)
from generation.semantic.sampling import load_model, make_plan, sample
from generation.semantic.textual_inversion import EMBEDS, train_textual_inversion
from generation.semantic.training_set import (allowed_splits, check_distinct_slugs, disease_slug, select_class_images,
                                              select_instances, tones_present)

log = logging.getLogger(__name__)


def trainable_diseases(real: StageStore, splits: dict[str, str], cfg: SemanticConfig) -> list[str]:
    """The config's diseases, or every joined disease with at least one image in an allowed split."""
    if cfg.diseases:
        diseases = sorted(cfg.diseases)
    else:
        allowed = allowed_splits(cfg.include_validation)
        diseases = sorted({r.disease for r in real.records() if r.kind == "real"
                           and all(splits.get(s) in allowed for s in r.source_ids)})
    check_distinct_slugs(diseases)
    return diseases


def ensure_ti(real: StageStore, splits: dict[str, str], disease: str, cfg: SemanticConfig, work_dir: Path,
              *, device: str | None = None, only_ids: list[str] | None = None):
    images = select_instances(real, splits, disease, include_validation=cfg.include_validation,
                              only_ids=only_ids)
    return train_textual_inversion(images, T.store_reader(real), disease, cfg,
                                   Path(work_dir) / disease_slug(disease) / "ti", device=device)


def ensure_lora(real: StageStore, splits: dict[str, str], disease: str, cfg: SemanticConfig, work_dir: Path,
                *, healthy: StageStore | None = None, device: str | None = None,
                only_ids: list[str] | None = None):
    """Instance images as for TI; class images from `healthy` (train split), else base-model priors."""
    work_dir = Path(work_dir)
    ti_path = work_dir / disease_slug(disease) / "ti" / EMBEDS
    if not ti_path.is_file():
        raise ConfigError(f"no textual inversion for {disease!r} at {ti_path}; run "
                          "`python -m builder generate train-ti` first (LoRA loads the token first)")
    instances = select_instances(real, splits, disease, include_validation=cfg.include_validation,
                                 only_ids=only_ids)
    classes, prior_dir = [], work_dir / "class_images" / T.fingerprint(
        {k: getattr(cfg, k) for k in ("model_id", "revision", "seed", "lora_resolution", "class_images",
                                      "sample_steps", "guidance")}, [])
    if cfg.prior_weight > 0:
        if healthy is not None:
            classes = choose_class_images(select_class_images(
                healthy, splits, include_validation=cfg.include_validation), cfg.class_images)
        missing = [t for t in tones_present(instances) if t not in tones_present(classes)]
        if missing:
            log.info("no healthy class images of tones %s; generating base-model priors", missing)
            classes += generate_prior_images(cfg, missing, cfg.class_images, prior_dir, device)
    return train_lora(instances, T.store_reader(real), classes, class_reader(healthy, prior_dir), disease,
                      ti_path, cfg, work_dir / disease_slug(disease) / "lora", device=device)


def run_semantic(real: StageStore, splits: dict[str, str], out: StageStore, cfg: SemanticConfig, *,
                 device, work_dir, healthy: StageStore | None = None, inputs: dict[str, str] | None = None,
                 on_change: str = "refuse", photos_of: dict[str, list[tuple[str, bool]]] | None = None
                 ) -> StageSummary:
    """Train every disease's models if needed, then sample `cfg.budget` images into `out` (img2img: from
    `healthy`'s rows, which are also the LoRA's class images). With `cfg.released`, nothing is trained:
    the released models are sampled, their lineage every photo of their disease (`photos_of`: joined
    disease -> [(source id, malignant)] of every photo of the source's table).

    `inputs` and `on_change` key the sampled store (see `builder.core.stage.pin`); the trained
    models carry their own fingerprints (instance images, settings) and are retrained on a change.

    Under `accelerate launch` every process calls this: training runs data-parallel, and
    sampling takes shard i iff i % world_size == rank.
    """
    if cfg.budget <= 0:
        return StageSummary("semantic").stop()
    T.check_config(cfg, device)
    prompts = healthy_prompts(healthy) if cfg.sampling == "img2img" else None  # before any training
    starts = sorted(prompts) if prompts is not None else None
    allowed = prompt_filter(real, splits, cfg, prompts) if prompts is not None else None
    if cfg.released:
        models = released_models(cfg, photos_of or {})
        diseases = sorted(models)
    else:
        diseases = trainable_diseases(real, splits, cfg)
        for d in diseases:
            ensure_ti(real, splits, d, cfg, work_dir, device=device)
            ensure_lora(real, splits, d, cfg, work_dir, healthy=healthy, device=device)
        models = {d: load_model(Path(work_dir), d) for d in diseases}
    rank, world = process_slot(device)
    return sample(out, models, make_plan(diseases, budget=cfg.budget, healthy=starts, allowed=allowed), cfg,
                  device=device, rank=rank, world_size=world, healthy=healthy, inputs=inputs, on_change=on_change,
                  photo_diseases=photo_diseases(real))


def released_models(cfg: SemanticConfig, photos_of: dict[str, list[tuple[str, bool]]]) -> dict:
    """disease -> DiseaseModel of every `semantic.released` model (one per disease; `semantic.diseases`, when
    set, must name the same diseases)."""
    from generation.semantic.released import load_released_models

    return load_released_models(cfg.released, photos_of, cfg.diseases)


def photo_diseases(real: StageStore) -> dict[str, str]:
    """source id -> joined disease of every real photo in `real`."""
    return {s: r.disease for r in real.records() if r.kind == "real" for s in r.source_ids}


def prompt_filter(real: StageStore, splits: dict[str, str], cfg: SemanticConfig, prompts: dict):
    """`semantic.cross_source` as a (disease, healthy id) -> bool filter, or None (`any`: every pair).

    A disease belongs to the sources of the photos its models train on (a disease in both sources, to
    both); a healthy prompt to the source of its photo. `A->B` keeps diseases of A sampled from healthy
    images of B (the paper's cross-dataset runs: Fitzpatrick17k diseases with DDI healthy prompts and back)."""
    if cfg.cross_source == "any":
        return None
    allowed_splits_ = allowed_splits(cfg.include_validation)
    of_disease: dict[str, set[str]] = {}
    for r in real.records():
        if r.kind == "real" and all(splits.get(s) in allowed_splits_ for s in r.source_ids):
            of_disease.setdefault(r.disease, set()).update(source_of(s) for s in r.source_ids)
    prompt_source = {h: source_of(p.source_ids[0]) for h, p in prompts.items() if p.source_ids}
    return lambda d, h: any(allows(cfg.cross_source, s, prompt_source.get(h, "")) for s in of_disease.get(d, ()))


def process_slot(device: str | None = None) -> tuple[int, int]:
    """(rank, world size) from accelerate's launcher; (0, 1) in a plain process.

    `cpu=True` matters: without it accelerate ignores a torchrun world on a machine with no CUDA.
    """
    from accelerate import PartialState

    state = PartialState(cpu=T._resolve_device(device) == "cpu")
    return state.process_index, state.num_processes
