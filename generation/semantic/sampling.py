"""Sampling plan (disease [x healthy image] x tone x count), per-sample seeds and lineage, sharded and resumable
generation; text-to-image, or image-to-image from healthy synthetics (generation.semantic.img2img)."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from builder.core.backends import backend_for
from builder.core.config import SemanticConfig
from builder.core.errors import ConfigError
from builder.core.progress import StageSummary
from builder.core.schema import (SKIN_TONES, Generator, Record, Rejection, make_sample_id, sample_seed)
from builder.core.fingerprint import combine
from builder.core.models import PinnedModel
from builder.core.stage import Shard, StageKey, outcome, pin, run_shards
from builder.core.store import StageStore, encode_png
from generation.semantic.img2img import (HealthyPrompt, generate_img2img_batch, img2img_pipeline,
                                         start_image)
from generation.semantic.training_set import (disease_slug, manifest_source_ids, prompt_for, read_manifest,
                                              sha256_file)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DiseaseModel:
    """One disease's trained adapters, their hashes and the real images they saw."""

    disease: str
    ti_path: Path
    lora_path: Path
    adapters: dict[str, str]  # file name (relative to the work dir) -> sha256
    manifests: dict[str, str]  # ti/lora -> manifest sha256
    source_ids: tuple[str, ...]
    malignant: bool
    origin: dict | None = None  # a released model: its repo, revision, commit and what it saw (every row says)
    training_photos: int = 0    # distinct real photos of the disease its models trained on


def load_model(work_dir: Path, disease: str) -> DiseaseModel:
    """Read a disease's TI and LoRA manifests and check the adapter files still match their hashes."""
    base = Path(work_dir) / disease_slug(disease)
    adapters, manifests, ids, paths = {}, {}, set(), {}
    for kind in ("ti", "lora"):
        m = read_manifest(base / kind)
        if m is None:
            raise ConfigError(f"no trained {kind} model for {disease!r} in {base / kind}; run "
                              f"`python -m builder generate train-{kind}` first")
        path = base / kind / m["adapter"]["file"]
        if not path.is_file() or sha256_file(path) != m["adapter"]["sha256"]:
            raise ConfigError(f"{path} is missing or does not match the sha256 in its manifest; retrain it")
        rel = f"{disease_slug(disease)}/{kind}/{m['adapter']['file']}"
        adapters[rel] = m["adapter"]["sha256"]
        manifests[kind] = sha256_file(base / kind / "manifest.json")
        ids |= set(manifest_source_ids(m))
        paths[kind] = path
        malignant = m["malignant"]  # the LoRA manifest (read last) decides; both see the same images
        photos = {s for im in m["images"] for s in im["source_ids"]}  # instances only, not class images
    return DiseaseModel(disease, paths["ti"], paths["lora"], adapters, manifests, tuple(sorted(ids)), malignant,
                        training_photos=len(photos))


@dataclasses.dataclass(frozen=True)
class PlanItem:
    disease: str
    tone: str
    index: int
    healthy: str | None = None  # img2img: the healthy synthetic's sample id


def make_plan(diseases: list[str], budget: int | None = None, per_cell: int | None = None,
              healthy: list[str] | None = None, allowed=None) -> list[PlanItem]:
    """Every disease x tone cell (img2img: disease x healthy image x prompted tone, the paper's 40 x 309 x 3)
    gets `per_cell` images, or `budget` split as evenly as possible.

    With a budget, the remainder goes one image each to the first cells in (disease, [healthy,] tone) order.
    `allowed(disease, healthy id)`: the img2img cells to keep (several sources: `semantic.cross_source`).
    """
    if healthy is None:
        cells = [(d, None, t) for d in sorted(diseases) for t in SKIN_TONES]
    else:
        cells = [(d, h, t) for d in sorted(diseases) for h in sorted(healthy) for t in SKIN_TONES
                 if allowed is None or allowed(d, h)]
    if (budget is None) == (per_cell is None):
        raise ConfigError("give exactly one of a budget or a per-cell count for the sampling plan")
    if not cells and allowed is not None and diseases and healthy:
        raise ConfigError("semantic.cross_source leaves no (disease, healthy prompt) pair: no disease of the "
                          "direction's first source has training photos, or no healthy prompt is of its second; "
                          "check the sources' names, or use cross_source: any")
    if not cells:
        raise ConfigError("the sampling plan has no diseases; train at least one disease model first")
    counts = [per_cell] * len(cells) if per_cell is not None else [
        budget // len(cells) + (1 if i < budget % len(cells) else 0) for i in range(len(cells))]
    return [PlanItem(d, t, k, h) for (d, h, t), n in zip(cells, counts) for k in range(n)]


@dataclasses.dataclass(frozen=True)
class Job:
    """A planned sample with its id, seed and lineage, known before any pixel is generated."""

    item: PlanItem
    sample_id: str
    seed: int
    prompt: str
    params: dict
    healthy: HealthyPrompt | None = None


def plan_jobs(plan: list[PlanItem], models: dict[str, DiseaseModel], cfg: SemanticConfig,
              scheduler: str, pinned: PinnedModel, healthy: dict[str, HealthyPrompt] | None = None,
              photo_diseases: dict[str, str] | None = None) -> list[Job]:
    """Every planned sample's id, seed and params. `photo_diseases` (source id -> joined disease) names the
    disease of each healthy prompt's photo on the row (`params.healthy_prompt_photos`, null when not known):
    the paper's leakage rule reads it from the published row."""
    jobs = []
    for it in plan:
        m = models[it.disease]
        params = {"negative_prompt": cfg.negative_prompt, "steps": cfg.sample_steps,
                  "guidance": cfg.guidance, "scheduler": scheduler, "resolution": cfg.sample_resolution,
                  "adapter_sha256": m.adapters, "manifest_sha256": m.manifests}
        if m.origin is not None:
            params["released_model"] = m.origin
        start = None
        if it.healthy is not None:
            start = healthy[it.healthy]
            params.update(sampling="img2img", strength=cfg.strength, healthy_sha256=start.sha256)
        prompt = prompt_for(it.disease, it.tone)
        # A Hub id and its commit; a local folder by its content (ids agree across machines).
        lineage = {"disease": it.disease, "tone": it.tone, "index": it.index, "model_id": pinned.identity,
                   "revision": pinned.revision, "prompt": prompt, "params": params}
        if start is not None:
            lineage["healthy"] = start.sample_id
        # The id hashes the adapters (not the pixels): it and its seed exist before generation.
        sid = make_sample_id("semantic", "+".join(sorted(m.adapters.values())), lineage)
        # The training-photo count follows from the manifests the id already hashes, the prompt photos' diseases
        # from the healthy image it hashes: on the row, not in the id.
        after = {"training_photos": m.training_photos}
        if start is not None:
            after["healthy_prompt_photos"] = {s: (photo_diseases or {}).get(s) for s in start.source_ids}
        jobs.append(Job(it, sid, sample_seed(sid, cfg.seed), prompt, {**params, **after}, start))
    return jobs


def shard_jobs(jobs: list[Job], shard_size: int) -> list[tuple[str, list[Job]]]:
    """Consecutive jobs of one disease, `shard_size` at a time: fixed shards, independent of process count."""
    shards = []
    for disease in sorted({j.item.disease for j in jobs}):
        mine = [j for j in jobs if j.item.disease == disease]
        for k in range(0, len(mine), shard_size):
            shards.append((f"{disease_slug(disease)}-{k // shard_size:05d}", mine[k:k + shard_size]))
    return shards


def generate_batch(pipe, prompts: list[str], seeds: list[int], cfg: SemanticConfig) -> list[np.ndarray | None]:
    """One pipeline call; CPU generators so a seed gives the same noise on any device.

    An image with non-finite pixels (fp16 overflow) comes back as None for the caller to reject.
    """
    import torch

    gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    neg = [cfg.negative_prompt] * len(prompts) if cfg.negative_prompt else None
    with torch.inference_mode():
        out = pipe(prompt=prompts, negative_prompt=neg, num_inference_steps=cfg.sample_steps,
                   guidance_scale=cfg.guidance, height=cfg.sample_resolution, width=cfg.sample_resolution,
                   generator=gens, output_type="np").images
    return [np.clip(np.round(im * 255), 0, 255).astype(np.uint8) if np.isfinite(im).all() else None
            for im in out]


def stage_key(jobs: list[Job], cfg: SemanticConfig, inputs: dict[str, str] | None = None) -> StageKey:
    """What sampled shards depend on: the plan (ids carry model, adapters, steps, scheduler), shards, batch."""
    plan = combine([[j.sample_id, j.item.disease, j.item.tone] for j in jobs])
    return StageKey("semantic", {"plan": plan, "shard_size": cfg.shard_size,
                                 **backend_for("sampling", cfg).fingerprint(cfg)}, inputs or {})


def sample(out: StageStore, models: dict[str, DiseaseModel], plan: list[PlanItem], cfg: SemanticConfig,
           *, device: str | None = None, rank: int = 0, world_size: int = 1, healthy: StageStore | None = None,
           inputs: dict[str, str] | None = None, on_change: str = "refuse",
           photo_diseases: dict[str, str] | None = None) -> StageSummary:
    """Generate this process's shards (shard i iff i % world_size == rank) in the one stage loop.

    A plan over healthy images (`make_plan(..., healthy=ids)`) samples image-to-image from `healthy`'s rows."""
    from generation.semantic import trainer as T
    from generation.semantic.img2img import healthy_prompts

    T.check_config(cfg, device)
    starts = healthy_prompts(healthy) if any(it.healthy for it in plan) else None
    dev = device or ("cuda" if _cuda() else "cpu")
    pinned = backend_for("sampling", cfg).pin(cfg)
    pipe = T.load_pipeline(cfg, T.weight_dtype(cfg.mixed_precision) if dev != "cpu" else None, pinned).to(dev)
    jobs = plan_jobs(plan, models, cfg, type(pipe.scheduler).__name__, pinned, starts, photo_diseases)
    runner = Runner(pipe, img2img_pipeline(pipe) if starts else None, healthy)
    key = stage_key(jobs, cfg, inputs)
    status = pin(out, key, on_change=on_change)
    shards = [Shard(name, js, tuple(j.sample_id for j in js)) for name, js in shard_jobs(jobs, cfg.shard_size)]
    loaded: list[str | None] = [None]

    def setup(todo: list[Shard]):
        for d in sorted({j.item.disease for s in todo for j in s.items}):
            pipe.load_textual_inversion(str(models[d].ti_path))

    def work(shard: Shard, _ctx, tick):
        disease = shard.items[0].item.disease
        if loaded[0] != disease:
            if loaded[0] is not None:
                pipe.unload_lora_weights()
            _load_lora(pipe, models[disease].lora_path)
            loaded[0] = disease
        return _run_shard(runner, out, shard.items, models[disease], cfg, pinned, tick)

    summary = run_shards(out, key, shards, work, rank=rank, world_size=world_size, setup=setup)
    summary.status = outcome(status, summary)
    return summary


def _load_lora(pipe, path: Path) -> None:
    """Load a UNet-only LoRA, without diffusers' warning that it has no text-encoder keys."""
    quiet = logging.getLogger("diffusers.loaders.lora_base")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        pipe.load_lora_weights(str(path.parent), weight_name=path.name)
    finally:
        quiet.setLevel(level)


@dataclasses.dataclass
class Runner:
    """The loaded pipelines: text-to-image, and image-to-image over the same modules with its healthy store."""

    pipe: object
    img2img: object = None
    healthy: StageStore | None = None

    def batch(self, jobs: list[Job], cfg: SemanticConfig) -> list[np.ndarray | None]:
        prompts, seeds = [j.prompt for j in jobs], [j.seed for j in jobs]
        if jobs[0].healthy is None:
            return generate_batch(self.pipe, prompts, seeds, cfg)
        starts = [start_image(self.healthy.read_image(j.healthy.sample_id), cfg.sample_resolution) for j in jobs]
        return generate_img2img_batch(self.img2img, prompts, starts, seeds, cfg)


def _run_shard(runner: Runner, out: StageStore, jobs: list[Job], model: DiseaseModel, cfg: SemanticConfig,
               pinned: PinnedModel, tick=lambda: None) -> tuple[list[Record], list[Rejection]]:
    gen = Generator(backend_for("sampling", cfg).name, pinned.name, pinned.revision,
                    tuple(f"{name}@sha256:{h}" for name, h in sorted(model.adapters.items())))
    records, rejections = [], []
    for k in range(0, len(jobs), cfg.sample_batch):
        batch = jobs[k:k + cfg.sample_batch]
        images = runner.batch(batch, cfg)
        for j, rgb in zip(batch, images):
            tick()
            if rgb is None:
                rejections.append(Rejection("semantic", j.sample_id, "non_finite_output",
                                            f"seed {j.seed}: the pipeline returned NaN/inf pixels "
                                            "(fp16 overflow?); try mixed_precision bf16 or no"))
                continue
            path = out.put_image(j.sample_id, encode_png(rgb))
            # img2img: the healthy image is the parent, and its real sources count for the leakage rule.
            sources = set(model.source_ids) | set(j.healthy.source_ids if j.healthy else ())
            records.append(Record(
                sample_id=j.sample_id, kind="semantic", skin_tone=j.item.tone, malignant=model.malignant,
                disease=j.item.disease, source_ids=sorted(sources), image_path=path, fitzpatrick=None,
                parent_id=j.healthy.sample_id if j.healthy else None, prompt=j.prompt, seed=j.seed,
                generator=gen, params=j.params))
    return records, rejections


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
