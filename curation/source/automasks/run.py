"""`generate masks`: an automatic label map for every photo of a source that has no mask, gated by confidence.

Output folder (pass it as the masks folder ingest reads, or let the build do it)::

    <stem>.npy              sDDI-form label map (0 background, 1 lesion, 2 marker, 4 skin), photo size
    auto_masks.jsonl        per photo considered: method, version, confidence, accepted or its reason
    sheets/batch-NNNNN.png  review contact sheet per batch: photo, lesion + skin overlay, confidence
    .batches/               per-batch entries (completion markers: a rerun resumes) and the pinned settings

Photos whose mask's confidence is under `min_confidence` get no mask file and the reason
`mask_low_confidence`; unreadable photos `unreadable_image`. Nothing is dropped silently.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from builder.core.backends import backend_for
from builder.core.config import MasksConfig
from builder.core.errors import ConfigError, SampleRejected
from builder.core.progress import StageSummary, progress
from builder.core.schema import canonical_json
from builder.core.store import atomic_write
from curation.source.images import read_photo
from curation.source.ingest import read_row_mask
from curation.source.masks import MaskError, auto_mask_file, read_auto_index, write_auto_index, write_label_map
from curation.source.metadata import SourceRow, read_source_table
from curation.source.automasks.sheets import SheetItem, write_sheet

log = logging.getLogger(__name__)
STAGE = "masks"
SETTINGS = ".batches/settings.json"

__all__ = ["STAGE", "check_inputs", "read_auto_index", "run_masks"]


def check_inputs(cfg: MasksConfig) -> None:
    """Bad settings fail before any photo is read or model loaded."""
    backend = backend_for("mask", cfg)  # an unknown name lists the registered backends
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise ConfigError(f"masks.min_confidence={cfg.min_confidence} must lie in [0, 1] (default 0.4)")
    if cfg.side < 64 or cfg.batch_size < 1:
        raise ConfigError(f"masks.side={cfg.side} must be >= 64 and masks.batch_size={cfg.batch_size} >= 1")
    backend.check(cfg)


def run_masks(source: Path, masks: Path | None, out: Path, cfg: MasksConfig, *, source_name: str | None = None,
              limit: int | None = None, device: str = "cpu") -> StageSummary:
    """Write automatic masks for every photo of `source` without one (see the module docstring)."""
    check_inputs(cfg)
    summary = StageSummary(STAGE)
    out = Path(out)
    table = read_source_table(source, masks, source_name=source_name, limit=limit)
    todo = [r for r in table.rows if r.mask is None]
    batches = [todo[i:i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    _pin_settings(out, cfg, todo)
    pending = [(i, b) for i, b in enumerate(batches) if not (out / _batch_file(i)).is_file()]
    summary.skipped = sum(len(b) for i, b in enumerate(batches)) - sum(len(b) for _, b in pending)
    if pending:
        backend = backend_for("mask", cfg)(cfg, device)
        if backend.fits_on_hand_masks:
            trained = [r for r in table.rows if r.mask is not None]
            log.info("%s masks: fit on %d photos with hand masks", backend.name,
                     backend.fit(_training_pairs(trained)))
        ticks = iter(progress(range(sum(len(b) for _, b in pending)), desc="masks"))
        for i, batch in pending:
            _run_batch(out, i, batch, backend, cfg, ticks)
    entries = _collect(out, len(batches))
    write_auto_index(out, entries)
    for e in entries:
        if e["accepted"]:
            summary.done += 1
        else:
            summary.reject(e["reason"])
    return summary.stop()  # done / rejected: the whole folder's; skipped: photos of batches already done


def _run_batch(out: Path, index: int, batch: list[SourceRow], backend, cfg: MasksConfig, ticks) -> None:
    entries, items = [], []
    for row in batch:
        entry, item = _mask_one(out, row, backend, cfg)
        entries.append(entry)
        if item is not None:
            items.append(item)
        next(ticks, None)
    accepted = sum(e["accepted"] for e in entries)
    write_sheet(out / "sheets" / f"batch-{index:05d}.png", items,
                f"batch {index}: {backend.method} {backend.version}, {accepted} of {len(entries)} accepted "
                f"(min confidence {cfg.min_confidence}); red lesion, green skin, blue marker, dark background")
    body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    atomic_write(out / _batch_file(index), body.encode())  # last: marks the batch done


def _mask_one(out: Path, row: SourceRow, backend, cfg: MasksConfig) -> tuple[dict, SheetItem | None]:
    stem = row.source_id.split(":", 1)[1]
    entry = {"source_id": row.source_id, "image": row.image.name, "file": None, "method": backend.method,
             "version": backend.version, "confidence": None, "min_confidence": cfg.min_confidence,
             "accepted": False, "reason": None, "detail": None}
    try:  # the same decoding as ingest: any mode -> faithful 8-bit RGB, or its named reason
        rgb = read_photo(row.image.read_bytes(), str(row.image))
    except SampleRejected as e:
        entry.update(reason=e.reason, detail=e.detail)
        return entry, None
    result = backend.segment(rgb)
    entry.update(confidence=result.confidence, lesion_frac=round(result.lesion_frac, 4))
    if result.confidence < cfg.min_confidence:
        entry.update(reason="mask_low_confidence",
                     detail=f"{row.image.name}: automatic mask confidence {result.confidence:.2f} < "
                            f"masks.min_confidence {cfg.min_confidence} ({backend.method} {backend.version}); "
                            "draw a mask by hand or lower the threshold after checking the review sheet")
    else:
        entry.update(accepted=True, file=auto_mask_file(stem))
        write_label_map(out / entry["file"], result.label_map)
    return entry, SheetItem(stem, rgb, result.label_map, result.confidence, entry["accepted"])


def _training_pairs(rows: list[SourceRow]):
    """(photo, hand label map) for every row with a readable mask (unreadable ones are left to ingest)."""
    for row in rows:
        try:
            rgb = read_photo(row.image.read_bytes(), str(row.image))
            h, w = rgb.shape[:2]
            lm = read_row_mask(row, h, w)
        except (MaskError, SampleRejected, OSError, ValueError) as e:
            log.warning("learned masks: %s not used for training (%s)", row.source_id, e)
            continue
        yield rgb, lm


def _batch_file(index: int) -> str:
    return f".batches/batch-{index:05d}.jsonl"


def _collect(out: Path, n: int) -> list[dict]:
    return [json.loads(line) for i in range(n)
            for line in (out / _batch_file(i)).read_text().splitlines() if line.strip()]


def _pin_settings(out: Path, cfg: MasksConfig, todo: list[SourceRow]) -> None:
    """Finished batches were made with these settings and inputs; resuming with others would mix them."""
    settings = {"config": dataclasses.asdict(cfg), "inputs": [r.source_id for r in todo],
                **backend_for("mask", cfg).fingerprint(cfg)}
    path = out / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(canonical_json(settings)):
            diff = sorted(k for k in settings if old.get(k) != json.loads(canonical_json(settings))[k])
            raise ConfigError(f"{out} holds automatic masks made with other {diff} (see {path}); rerun with "
                              "the same settings to resume, or use a new --out folder")
        return
    atomic_write(path, (canonical_json(settings) + "\n").encode())
