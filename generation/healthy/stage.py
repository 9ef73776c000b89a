"""Healthy synthetics (cgDDI section 1): inpaint each real photo's lesion into healthy skin, in shards.

Work is cut into deterministic shards of real records sorted by id and run by the one stage loop
(`builder.core.stage`): shards by rank, fingerprinted markers, one retry, settings pinned.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from builder.core.backends import backend_for
from builder.core.config import HealthyConfig
from builder.core.errors import ConfigError
from builder.core.progress import StageSummary
from builder.core.schema import (HEALTHY_DISEASE, LABEL_SKIN, LABEL_VALUES, MASK_HEALED, MASK_LABELS, MASK_OTHER,
                                 Generator, Record, Rejection, digest, make_sample_id, sample_seed)
from builder.core.stage import Shard, StageKey, check_slot, outcome, pin, run_shards, store_fingerprint
from builder.core.store import StageStore, decode_label_map, decode_rgb, encode_png
from generation.healthy.backends import DTYPES, Job
from generation.healthy.region import composite, healed_label_map, inpaint_region

log = logging.getLogger(__name__)

STAGE = "healthy"


@dataclasses.dataclass
class Prepared:
    """A usable real record: its decoded image and label map, and the healthy id, prompt and seed."""

    real: Record
    job: Job
    label_map: np.ndarray
    sample_id: str


def run_healthy(real: StageStore, out: StageStore, cfg: HealthyConfig, *, device: str = "cpu",
                batch_size: int = 4, rank: int = 0, world_size: int = 1, shard_size: int = 16,
                inputs: dict[str, str] | None = None, on_change: str = "refuse") -> StageSummary:
    """Inpaint every real record of `real` (kind 'real', with image + label map) into `out`.

    `inputs` names the fingerprints the outputs depend on (default: the real store's); a store
    made with another key is refused, or cleared with `on_change='reset'` (see `builder.core.stage`).
    """
    check_inputs(cfg, device, batch_size, rank, world_size, shard_size)
    key = stage_key(cfg, shard_size, batch_size, inputs or {"real": store_fingerprint(real)})
    status = pin(out, key, on_change=on_change)
    shards = make_shards(real.records(), shard_size)

    def setup(todo):
        return backend_for("inpainting", cfg)(cfg, device)  # loaded once per process, only when there is work

    def work(shard: Shard, backend, tick):
        return run_shard(real, out, cfg, backend, shard.items, batch_size, tick)

    summary = run_shards(out, key, shards, work, rank=rank, world_size=world_size, setup=setup)
    summary.status = outcome(status, summary)
    log.debug(summary.line())  # the caller prints it (CLI, build table)
    return summary


def stage_key(cfg: HealthyConfig, shard_size: int, batch_size: int, inputs: dict[str, str]) -> StageKey:
    """What healthy outputs depend on: the config, the shard layout, the backend's run fingerprint
    (diffusers: the batch size), the inputs."""
    settings = {"config": dataclasses.asdict(cfg), "shard_size": shard_size, "published_mask": list(MASK_LABELS),
                **backend_for("inpainting", cfg).fingerprint(cfg, batch_size=batch_size)}
    return StageKey(STAGE, settings, inputs)


def check(cfg: HealthyConfig) -> None:
    """Bad healthy settings fail here, before any image is read or any model loaded (the build calls it first)."""
    backend_for("inpainting", cfg).check(cfg)  # an unknown name lists the registered backends
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"healthy.dtype={cfg.dtype!r} is not one of {DTYPES}")
    for name in ("dilate_px", "feather_px", "rim_px"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"healthy.{name}={getattr(cfg, name)} must be >= 0")
    if cfg.crop_size < 64 or cfg.crop_size % 8:
        raise ConfigError(f"healthy.crop_size={cfg.crop_size} must be a multiple of 8 and >= 64 "
                          "(SD latents are 1/8 of the image size); e.g. 512")
    if cfg.opencv_grain < 0:
        raise ConfigError(f"healthy.opencv_grain={cfg.opencv_grain} must be >= 0 (0 = smooth fill)")
    if cfg.steps < 1 or cfg.opencv_radius < 1:
        raise ConfigError(f"healthy.steps={cfg.steps} and healthy.opencv_radius={cfg.opencv_radius} "
                          "must be >= 1")
    try:
        cfg.prompt.format(tone="light")
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"healthy.prompt={cfg.prompt!r} must be a template whose only field is "
                          f"{{tone}} ({e!r})") from e


def check_inputs(cfg: HealthyConfig, device: str, batch_size: int, rank: int, world_size: int,
                 shard_size: int) -> None:
    """`check` plus the run's device, batch and shard sizes and process slot."""
    check(cfg)
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")
    if batch_size < 1 or shard_size < 1:
        raise ConfigError(f"batch_size={batch_size} and shard_size={shard_size} must be >= 1")
    check_slot(rank, world_size)


def make_shards(records: list[Record], shard_size: int) -> list[Shard]:
    """Real records sorted by id, cut into `shard-00000`, `shard-00001`, ... of `shard_size` each."""
    recs = sorted(records, key=lambda r: r.sample_id)
    return [Shard(f"shard-{i // shard_size:05d}", recs[i:i + shard_size],
                  tuple(r.sample_id for r in recs[i:i + shard_size])) for i in range(0, len(recs), shard_size)]


def run_shard(real: StageStore, out: StageStore, cfg: HealthyConfig, backend, recs: list[Record],
              batch_size: int, tick) -> tuple[list[Record], list[Rejection]]:
    """Prepare, generate in batches, write images and masks; the shard's records and rejections."""
    ready, rejections = [], []
    for rec in recs:
        item = prepare(real, rec, cfg, backend)
        if isinstance(item, Rejection):
            rejections.append(item)
            tick()
        else:
            ready.append(item)
    records = []
    for start in range(0, len(ready), batch_size):
        batch = ready[start:start + batch_size]
        for item, patch in zip(batch, backend.generate([p.job for p in batch])):
            tick()
            if patch is None:
                rejections.append(Rejection(
                    STAGE, item.real.sample_id, "non_finite_output",
                    f"{item.real.sample_id}: the model returned NaN/inf pixels; use healthy.dtype "
                    "float32 or bfloat16 (fp16 VAEs can overflow)", None))
                continue
            records.append(write_healthy(out, cfg, backend, item, patch))
    return records, rejections


def prepare(real: StageStore, rec: Record, cfg: HealthyConfig, backend) -> Prepared | Rejection:
    """Read and check one real record; every way it can be unusable is a named rejection."""
    # Paths relative to the real store: rejections are the same bytes wherever --out lies.
    img_rel, mask_rel = rec.image_path or f"images/{rec.sample_id}.png", f"masks/{rec.sample_id}.png"
    who = f"{rec.sample_id} ({', '.join(rec.source_ids)})"

    def reject(reason: str, detail: str, rel: str) -> Rejection:
        return Rejection(STAGE, rec.sample_id, reason, f"{who}: {rel}: {detail}", rel)

    if rec.kind != "real":
        return reject("not_real", f"kind {rec.kind!r}; healthy inpaints real photos only", img_rel)
    if not (real.root / img_rel).is_file():
        return reject("missing_image", "the image file does not exist", img_rel)
    if not (real.root / mask_rel).is_file():
        why = rec.mask_rejection  # an automatic mask that failed its gate
        return reject(why.reason, why.detail or why.reason, mask_rel) if why else \
            reject("missing_mask", "no label map for this photo", mask_rel)
    img_bytes, mask_bytes = (real.root / img_rel).read_bytes(), (real.root / mask_rel).read_bytes()
    try:
        image = decode_rgb(img_bytes)
    except Exception as e:  # PIL raises several types for corrupt files
        return reject("unreadable_image", str(e), img_rel)
    try:
        label_map = decode_label_map(mask_bytes)
    except Exception as e:
        return reject("unreadable_mask", str(e), mask_rel)
    if label_map.shape != image.shape[:2]:
        return reject("mask_size_mismatch", f"label map {label_map.shape} vs image {image.shape[:2]}", mask_rel)
    bad = np.setdiff1d(np.unique(label_map), LABEL_VALUES)
    if bad.size:
        return reject("unknown_label_values", f"values {bad.tolist()} outside {LABEL_VALUES}", mask_rel)
    region = inpaint_region(label_map, include_marker=cfg.include_marker, dilate_px=cfg.dilate_px,
                            feather_px=cfg.feather_px, rim_px=cfg.rim_px, rgb=image)
    if region is None:
        what = "lesion or marker" if cfg.include_marker else "lesion"
        return reject("empty_region", f"no {what} pixels to inpaint", mask_rel)
    skin = label_map == LABEL_SKIN
    if not (skin & ~region.mask).any():  # else the photo would come back as is
        return reject("no_skin_to_inpaint", f"the inpaint region ({region.pixels} px) leaves no skin pixel "
                      "(label 4) to inpaint from; the photo cannot become a healthy-skin image", mask_rel)
    sample_id = make_sample_id("healthy", digest(img_bytes), lineage(rec, cfg, backend, digest(mask_bytes)))
    seed = sample_seed(sample_id, cfg.seed)
    prompt = backend.prompt_for(rec.skin_tone) if backend.prompted else None
    return Prepared(rec, Job(image, region, prompt, seed, skin=skin), label_map, sample_id)


def lineage(rec: Record, cfg: HealthyConfig, backend, mask_digest: str) -> dict:
    """Everything the healthy image depends on (its id's fingerprint); no setting it ignores."""
    d = {"real_id": rec.sample_id, "source_ids": list(rec.source_ids), "mask": mask_digest,
         "backend": backend.name, "model": backend.identity, "revision": backend.revision,
         "include_marker": cfg.include_marker, "dilate_px": cfg.dilate_px,
         "feather_px": cfg.feather_px, **backend.params()}
    if cfg.rim_px:  # left out at 0 (no rim): ids of versions without one stay as they were
        d["rim_px"] = cfg.rim_px
    if backend.prompted:
        d["prompt"] = backend.prompt_for(rec.skin_tone)
    if uses_seed(cfg):
        d["seed"] = cfg.seed
    return d


def uses_seed(cfg: HealthyConfig) -> bool:
    """Whether the output depends on the per-sample seed (a smooth Telea fill does not)."""
    return backend_for("inpainting", cfg).uses_seed(cfg)


def write_healthy(out: StageStore, cfg: HealthyConfig, backend, item: Prepared,
                  patch: np.ndarray) -> Record:
    """Paste the patch back, composite through the region, write image + new label map; the record."""
    job = item.job
    x0, y0, x1, y1 = backend.window(job)
    generated = job.image.copy()
    generated[y0:y1, x0:x1] = patch
    healthy = composite(job.image, generated, job.region)
    image_path = out.put_image(item.sample_id, encode_png(healthy))
    out.put_mask(item.sample_id, healed_label_map(item.label_map, job.region))
    mask_path = out.put_segmentation(item.sample_id, np.where(job.region.mask, MASK_HEALED, MASK_OTHER))
    rec = item.real
    params = {"include_marker": cfg.include_marker,
              "dilate_px": cfg.dilate_px, "feather_px": cfg.feather_px,
              "region_px": job.region.pixels, "region_box": list(job.region.box),
              "window": [x0, y0, x1, y1], **backend.params()}
    if cfg.rim_px:
        params["rim_px"] = cfg.rim_px
    return Record(
        sample_id=item.sample_id, kind="healthy", skin_tone=rec.skin_tone, malignant=False,
        disease=HEALTHY_DISEASE, source_ids=list(rec.source_ids), image_path=image_path,
        split=rec.split, fitzpatrick=rec.fitzpatrick, disease_raw=None, patient_id=rec.patient_id,
        parent_id=rec.sample_id, base_id=None, donor_id=None, prompt=job.prompt, seed=job.seed if uses_seed(cfg) else None,
        generator=Generator(backend.name, backend.model_id, backend.revision, ()), params=params,
        auto_masks=rec.auto_masks, mask_path=mask_path)
