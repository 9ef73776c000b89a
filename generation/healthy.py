"""Healthy synthetics (cgDDI section 1): inpaint each real photo's lesion into healthy skin, in shards.

Work is cut into deterministic shards of real records sorted by id; process `rank` of
`world_size` takes shard i iff i % world_size == rank, and a shard whose records file exists is
skipped, so the union of outputs is the same for any world size and a killed run resumes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from typing import Iterator

import numpy as np

from builder.core.config import HealthyConfig
from builder.core.errors import BuildError, CgddiError, ConfigError
from builder.core.progress import StageSummary, progress
from builder.core.schema import (HEALTHY_DISEASE, LABEL_SKIN, LABEL_VALUES, Generator, Record, Rejection,
                            canonical_json, digest, make_sample_id, sample_seed)
from builder.core.store import StageStore, atomic_write, decode_label_map, decode_rgb, encode_png
from generation.healthy_backends import BACKENDS, DTYPES, Job
from generation.inpaint_region import composite, healed_label_map, inpaint_region

log = logging.getLogger(__name__)

STAGE = "healthy"
PLAN_FILE = "healthy_plan.json"


@dataclasses.dataclass
class Prepared:
    """A usable real record: its decoded image and label map, and the healthy id, prompt and seed."""

    real: Record
    job: Job
    label_map: np.ndarray
    sample_id: str


def run_healthy(real: StageStore, out: StageStore, cfg: HealthyConfig, *, device: str = "cpu",
                batch_size: int = 4, rank: int = 0, world_size: int = 1,
                shard_size: int = 16) -> StageSummary:
    """Inpaint every real record of `real` (kind 'real', with image + label map) into `out`."""
    check_inputs(cfg, device, batch_size, rank, world_size, shard_size)
    summary = StageSummary(STAGE)
    shards = make_shards(real.records(), shard_size)
    write_plan(out, cfg, shard_size, batch_size, shards)
    todo = []
    for i, (name, recs) in enumerate(shards):
        if i % world_size != rank:
            continue
        if out.shard_done(name):
            summary.skipped += len(recs)
        else:
            todo.append((name, recs))
    if todo:
        from generation.healthy_backends import make_backend

        backend = make_backend(cfg, device)  # loaded once per process, only when there is work
        ticks = iter(progress(range(sum(len(r) for _, r in todo)), desc=f"healthy[{rank}]"))
        for name, recs in todo:
            run_shard_retrying(real, out, cfg, backend, name, recs, batch_size, summary, ticks)
    log.debug(summary.stop().line())  # the caller prints it (CLI, build table)
    return summary


def check_inputs(cfg: HealthyConfig, device: str, batch_size: int, rank: int, world_size: int,
                 shard_size: int) -> None:
    """Bad configuration fails here, before any image is read or any model loaded."""
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"healthy.backend={cfg.backend!r} is not one of {BACKENDS}")
    if cfg.backend == "diffusers" and not cfg.model_id:
        raise ConfigError("healthy.backend=diffusers needs a model: set healthy.model_id (or --model) "
                          "to a Hub id such as runwayml/stable-diffusion-inpainting or a local folder")
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"healthy.dtype={cfg.dtype!r} is not one of {DTYPES}")
    for name in ("dilate_px", "feather_px"):
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
    if not (device == "cpu" or device.startswith("cuda") or device == "mps"):
        raise ConfigError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")
    if batch_size < 1 or shard_size < 1:
        raise ConfigError(f"batch_size={batch_size} and shard_size={shard_size} must be >= 1")
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank} must be in [0, world_size={world_size})")


def make_shards(records: list[Record], shard_size: int) -> list[tuple[str, list[Record]]]:
    """Real records sorted by id, cut into `shard-00000`, `shard-00001`, ... of `shard_size` each."""
    recs = sorted(records, key=lambda r: r.sample_id)
    return [(f"shard-{i // shard_size:05d}", recs[i:i + shard_size])
            for i in range(0, len(recs), shard_size)]


def write_plan(out: StageStore, cfg: HealthyConfig, shard_size: int, batch_size: int,
               shards: list[tuple[str, list[Record]]]) -> None:
    """Pin what finished shards were made with; resuming with other settings would mix outputs."""
    plan = {"config": dataclasses.asdict(cfg), "shard_size": shard_size,
            "inputs": digest("\n".join(r.sample_id for _, rs in shards for r in rs).encode())}
    if cfg.backend == "diffusers":
        plan["batch_size"] = batch_size  # batch composition changes diffusers pixels by +-1
    path = out.root / PLAN_FILE
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
        if diff:
            raise ConfigError(f"{out.root} holds healthy outputs made with different {diff} "
                              f"(see {path}); rerun with the same settings to resume, or use a new --out")
        return
    atomic_write(path, (canonical_json(plan) + "\n").encode())


def run_shard_retrying(real: StageStore, out: StageStore, cfg: HealthyConfig, backend, name: str,
                       recs: list[Record], batch_size: int, summary: StageSummary, ticks: Iterator,
                       attempts: int = 2) -> None:
    """A failed shard is retried once, then reported; finished shards stay, so a rerun resumes."""
    for attempt in range(1, attempts + 1):
        partial = StageSummary(STAGE)  # counts only land once the shard is finished
        try:
            run_shard(real, out, cfg, backend, name, recs, batch_size, partial, ticks)
        except CgddiError:
            raise
        except Exception as e:  # noqa: BLE001 (any failure of a shard gets the same treatment)
            log.warning("healthy %s failed (attempt %d of %d): %r", name, attempt, attempts, e)
            if attempt == attempts:
                raise BuildError(f"healthy {name} of {out.root} failed {attempts} times, last with {e!r}; "
                                 "finished shards are kept: fix the cause and rerun the same command "
                                 "to resume") from e
            continue
        summary.done += partial.done
        summary.rejected.update(partial.rejected)
        return


def run_shard(real: StageStore, out: StageStore, cfg: HealthyConfig, backend, name: str,
              recs: list[Record], batch_size: int, summary: StageSummary, ticks: Iterator) -> None:
    """Prepare, generate in batches, write images and masks, then the shard's records (its marker)."""
    ready, rejections = [], []
    for rec in recs:
        item = prepare(real, rec, cfg, backend)
        if isinstance(item, Rejection):
            rejections.append(item)
            summary.reject(item.reason)
            next(ticks, None)
        else:
            ready.append(item)
    records = []
    for start in range(0, len(ready), batch_size):
        batch = ready[start:start + batch_size]
        for item, patch in zip(batch, backend.generate([p.job for p in batch])):
            next(ticks, None)
            if patch is None:
                rejections.append(Rejection(
                    STAGE, item.real.sample_id, "non_finite_output",
                    f"{item.real.sample_id}: the model returned NaN/inf pixels; use healthy.dtype "
                    "float32 or bfloat16 (fp16 VAEs can overflow)", None))
                summary.reject("non_finite_output")
                continue
            records.append(write_healthy(out, cfg, backend, item, patch))
            summary.done += 1
    out.finish_shard(name, records, rejections)


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
        why = (rec.params or {}).get("mask_rejected")  # an automatic mask that failed its gate
        return reject(why, (rec.params or {}).get("mask_rejected_detail") or why, mask_rel) if why else \
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
                            feather_px=cfg.feather_px)
    if region is None:
        what = "lesion or marker" if cfg.include_marker else "lesion"
        return reject("empty_region", f"no {what} pixels to inpaint", mask_rel)
    if not (label_map[~region.mask] == LABEL_SKIN).any():  # issue 11: else the photo came back as is
        return reject("no_skin_to_inpaint", f"the inpaint region ({region.pixels} px) leaves no skin pixel "
                      "(label 4) to inpaint from; the photo cannot become a healthy-skin image", mask_rel)
    sample_id = make_sample_id("healthy", digest(img_bytes), lineage(rec, cfg, backend, digest(mask_bytes)))
    seed = sample_seed(sample_id, cfg.seed)
    prompt = cfg.prompt.format(tone=rec.skin_tone) if backend.name == "diffusers" else None
    return Prepared(rec, Job(image, region, prompt, seed, skin=label_map == LABEL_SKIN), label_map, sample_id)


def lineage(rec: Record, cfg: HealthyConfig, backend, mask_digest: str) -> dict:
    """Everything the healthy image depends on (its id's fingerprint); no setting it ignores."""
    d = {"real_id": rec.sample_id, "source_ids": list(rec.source_ids), "mask": mask_digest,
         "backend": backend.name, "model": backend.identity, "revision": backend.revision,
         "include_marker": cfg.include_marker, "dilate_px": cfg.dilate_px,
         "feather_px": cfg.feather_px, **backend.params()}
    if backend.name == "diffusers":
        d["prompt"] = cfg.prompt.format(tone=rec.skin_tone)
    if uses_seed(cfg):
        d["seed"] = cfg.seed
    return d


def uses_seed(cfg: HealthyConfig) -> bool:
    """Whether the output depends on the per-sample seed (a smooth Telea fill does not)."""
    return cfg.backend == "diffusers" or cfg.opencv_grain > 0 or cfg.opencv_method == "exemplar"


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
    rec = item.real
    params = {"real_id": rec.sample_id, "include_marker": cfg.include_marker,
              "dilate_px": cfg.dilate_px, "feather_px": cfg.feather_px,
              "region_px": job.region.pixels, "region_box": list(job.region.box),
              "window": [x0, y0, x1, y1], **backend.params()}
    return Record(
        sample_id=item.sample_id, kind="healthy", skin_tone=rec.skin_tone, malignant=False,
        disease=HEALTHY_DISEASE, source_ids=list(rec.source_ids), image_path=image_path,
        split=rec.split, fitzpatrick=rec.fitzpatrick, disease_raw=None, base_id=None,
        donor_id=None, prompt=job.prompt, seed=job.seed if uses_seed(cfg) else None,
        generator=Generator(backend.name, backend.model_id, backend.revision, ()), params=params,
        auto_masks=rec.auto_masks)
