"""The known artefacts of the published healthy images, measured: each fill artefact detector
(`generation.healthy.artefacts`: a mark copied from elsewhere in the photo, foreign colour, a straight
seam, repeated tiles, a flat fill) run on every healthy row against the photo it was healed from.

The region is the one the healthy stage inpainted, made again from the parent's label map and the
row's own settings (`include_marker`, `dilate_px`, `feather_px`, `rim_px`), so what is measured is exactly what
was filled. The card lists, per detector, how many images it flagged and which; the manifest keeps
every flagged id. Deterministic: the same rows give the same figures.
"""
from __future__ import annotations

from builder.core.schema import LABEL_SKIN, Record
from builder.core.store import StageStore
from builder.core.workers import map_jobs


def measure_fill_artefacts(records: list[Record], stores: dict[str, StageStore],
                           workers: int | None = 1) -> dict | None:
    """{"rows", "measured", "not_measured", "detectors": {name: {"threshold", "below", "flagged": [ids]}}}
    for the healthy rows, or None when there are none. A row whose photo or label map is not in
    `stores["real"]` (by `parent_id`, else by the same `source_ids`) is counted in `not_measured`."""
    from generation.healthy import artefacts

    healthy = [r for r in records if r.kind == "healthy"]
    if not healthy or "healthy" not in stores:
        return None
    real = stores.get("real")
    reals = real.records() if real is not None else []
    by_id = {r.sample_id: r for r in reals}
    by_sources = {tuple(sorted(r.source_ids)): r for r in reals}
    jobs = []
    for r in sorted(healthy, key=lambda r: r.sample_id):
        parent = by_id.get(r.parent_id) or by_sources.get(tuple(sorted(r.source_ids)))  # the photo it was healed from
        if parent is not None and real.mask_path(parent.sample_id).is_file():
            jobs.append((_path(stores["healthy"], r), _path(real, parent), str(real.mask_path(parent.sample_id)),
                         r.sample_id, dict(r.params or {})))
    results = map_jobs(_measure, jobs, workers, "fill artefacts", per_worker=50, chunksize=8)
    flagged = {k: [] for k in artefacts.DETECTORS}
    for (_, _, _, sid, _), values in zip(jobs, results):
        for name in artefacts.fired(values):
            flagged[name].append(sid)
    return {"rows": len(healthy), "measured": len(jobs), "not_measured": len(healthy) - len(jobs),
            "detectors": {k: {"threshold": artefacts.THRESHOLDS[k], "below": k in artefacts.BELOW,
                              "flagged": flagged[k]} for k in artefacts.DETECTORS}}


def _path(store: StageStore, rec: Record) -> str:
    return str(store.root / (rec.image_path or f"images/{rec.sample_id}.png"))


def _measure(job: tuple) -> dict:
    from pathlib import Path

    from builder.core.store import decode_label_map, decode_rgb
    from generation.healthy import artefacts
    from generation.healthy.region import inpaint_region

    image_path, photo_path, mask_path, _, params = job
    labels = decode_label_map(Path(mask_path).read_bytes())
    image, photo = decode_rgb(Path(image_path).read_bytes()), decode_rgb(Path(photo_path).read_bytes())
    if image.shape != photo.shape or labels.shape != photo.shape[:2]:
        return {}
    region = inpaint_region(labels, include_marker=bool(params.get("include_marker", True)),
                            dilate_px=int(params.get("dilate_px", 0)), feather_px=int(params.get("feather_px", 0)),
                            rim_px=int(params.get("rim_px", 0)), rgb=photo)
    if region is None:
        return {}
    return artefacts.measure(image, photo, region.mask, (labels == LABEL_SKIN) & ~region.mask)
