"""How much of each published image is real: the share of its pixels bit-identical to its source photo(s), per kind.

By the method's design, healthy images keep everything outside the inpainted region and
lesion-mapped images carry a real donor lesion; the card must say how much, measured on the
decoded pixels of what was published. Per row:

- `identical`: share of pixels whose RGB value equals, at the same position, that of one of the
  row's source photos (the real photos in `source_ids`, as ingested), compared only with photos of
  the image's own size (a different size cannot share positions);
- `donor` (lesion-mapped only): share of pixels that differ from the row's healthy base image,
  i.e. the pasted donor lesion, cut from a real photo (rotated and feathered, so mostly not
  bit-identical to it, yet real-photo pixels in substance).

Rows are measured in a worker pool; decoded photos are cached per worker, rows sorted so that rows
sharing a photo are neighbours. Deterministic: the same content gives the same figures.
"""
from __future__ import annotations

import functools
import statistics
import struct
from pathlib import Path

import numpy as np

from builder.core.schema import KINDS, Record
from builder.core.store import StageStore, decode_rgb
from builder.core.workers import map_jobs

CACHE = 8  # decoded photos per worker (a large clinical photo is ~36 MB decoded)


def measure_source_pixels(records: list[Record], stores: dict[str, StageStore],
                          workers: int | None = 1) -> dict:
    """Per kind present: rows, rows measured, why the others were not (reason -> count), and the
    `identical` (lesion-mapped: also `donor`) shares as {median, min, max}. Source photos come from
    `stores["real"]`; a row whose photos are not there is counted as `no_source_photo`."""
    jobs, skipped = _jobs(records, stores)
    results = map_jobs(_measure, jobs, workers, "source pixels", per_worker=100, chunksize=16)
    out = {}
    for kind in KINDS:
        mine = [res for (k, *_), res in zip(jobs, results) if k == kind]
        reasons = {"no_source_photo": skipped.get(kind, 0),
                   "size_differs": sum(res["identical"] is None for res in mine)}
        measured = [res for res in mine if res["identical"] is not None]
        if not mine and not reasons["no_source_photo"]:
            continue
        out[kind] = {"rows": len(mine) + reasons["no_source_photo"], "measured": len(measured),
                     "not_measured": {k: n for k, n in reasons.items() if n},
                     "identical": _stats([res["identical"] for res in measured])}
        if kind == "lesion_mapped":
            out[kind]["donor"] = _stats([res["donor"] for res in measured if res["donor"] is not None])
    return out


def _stats(shares: list[float]) -> dict | None:
    if not shares:
        return None
    return {"median": round(statistics.median(shares), 4), "min": round(min(shares), 4),
            "max": round(max(shares), 4)}


def _jobs(records: list[Record], stores: dict[str, StageStore]) -> tuple[list[tuple], dict]:
    """(kind, image path, source photo paths, base image path) per row with a source photo; per kind,
    the count of rows without one."""
    real = stores.get("real")
    photo_of = {}
    if real is not None:
        for rec in real.records():
            for sid in rec.source_ids:
                photo_of[sid] = str(real.root / (rec.image_path or f"images/{rec.sample_id}.png"))
    healthy = stores.get("healthy")
    jobs, skipped = [], {}
    for r in records:
        photos = [photo_of[s] for s in r.source_ids if s in photo_of]
        if not photos:
            skipped[r.kind] = skipped.get(r.kind, 0) + 1
            continue
        base = None
        if r.kind == "lesion_mapped" and healthy is not None and r.base_id:
            path = healthy.image_path(r.base_id)
            base = str(path) if path.is_file() else None
        image = str(stores[r.kind].root / (r.image_path or f"images/{r.sample_id}.png"))
        jobs.append((r.kind, image, tuple(photos), base))
    jobs.sort(key=lambda j: (j[2], j[1]))  # rows sharing photos are neighbours: the cache hits
    return jobs, skipped


def _measure(job: tuple) -> dict:
    kind, image, photos, base = job
    rgb = _decode(image)
    same = [p for p in photos if (png_size(p) or _decode(p).shape[1::-1]) == rgb.shape[1::-1]]
    identical = None
    if same:
        hit = np.zeros(rgb.shape[:2], bool)
        for p in same:
            hit |= (_decode(p) == rgb).all(axis=2)
        identical = float(hit.mean())
    donor = None
    if base is not None:
        base_rgb = _decode(base)
        if base_rgb.shape == rgb.shape:
            donor = float((base_rgb != rgb).any(axis=2).mean())
    return {"identical": identical, "donor": donor}


@functools.lru_cache(maxsize=CACHE)
def _decode(path: str) -> np.ndarray:
    return decode_rgb(Path(path).read_bytes())


def png_size(path: str) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk without decoding it; None when not a PNG."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or not head.startswith(b"\x89PNG"):
        return None
    return struct.unpack(">II", head[16:24])
