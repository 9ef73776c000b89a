"""`generate masks`: an automatic label map for every photo of a source that has no mask, gated by confidence.

Output folder (pass it as the masks folder ingest reads, or let the build do it)::

    <stem>.npy              sDDI-form label map (0 background, 1 lesion, 2 marker, 4 skin), photo size
    auto_masks.jsonl        per photo considered: method, version, confidence, accepted or its reason
    sheets/batch-NNNNN.png  review contact sheet per batch: photo, lesion + skin overlay, confidence
    entries/batch-NNNNN.jsonl  per-batch entries
    markers/batch-NNNNN.json   completion markers carrying the batch's fingerprint (a rerun resumes)
    stage.json              the step's key: settings and photos (`builder.core.stage.pin`)

The step follows the build's one step contract: its key (every masks setting, the photos it
masks) is pinned with `pin`; a folder made with another key is refused (`generate masks --out`)
or cleared and redone (the build's own work folder), so a changed `masks.min_confidence` reruns
this step and what follows; batches are shards (batch i belongs to rank i % world_size).

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
from builder.core.fingerprint import combine
from builder.core.progress import StageSummary, progress
from builder.core.schema import LABEL_LESION
from builder.core.stage import Shard, StageKey, check_slot, mine, outcome, pin
from builder.core.store import atomic_write, marker_matches, write_marker
from curation.source.images import read_photo
from curation.source.ingest import read_row_mask
from curation.source.masks import MaskError, auto_mask_file, read_auto_index, write_auto_index, write_label_map
from curation.source.metadata import SourceRow, SourceTable, read_source_table
from curation.source.automasks.sheets import SheetItem, write_sheet
from curation.source.automasks.vet import VERSION as VET_VERSION
from curation.source.automasks.vet import vet

log = logging.getLogger(__name__)
STAGE = "masks"

__all__ = ["STAGE", "check_inputs", "read_auto_index", "run_masks"]


def check_inputs(cfg: MasksConfig) -> None:
    """Bad settings fail before any photo is read or model loaded."""
    backend = backend_for("mask", cfg)  # an unknown name lists the registered backends
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise ConfigError(f"masks.min_confidence={cfg.min_confidence} must lie in [0, 1] (default 0.4)")
    if cfg.side < 64 or cfg.batch_size < 1:
        raise ConfigError(f"masks.side={cfg.side} must be >= 64 and masks.batch_size={cfg.batch_size} >= 1")
    backend.check(cfg)


def run_masks(source: Path | SourceTable, masks: Path | None, out: Path, cfg: MasksConfig, *,
              source_name: str | None = None, limit: int | None = None, device: str = "cpu",
              on_change: str = "refuse", rank: int = 0, world_size: int = 1) -> StageSummary:
    """Write automatic masks for every photo of `source` without one (see the module docstring).

    `source` is a source folder, or its table already read (`read_source_table`: the build reads a
    source once). `on_change='reset'` clears a folder made with other settings instead of refusing."""
    check_inputs(cfg)
    check_slot(rank, world_size)
    summary = StageSummary(STAGE)
    out = Path(out)
    table = source if isinstance(source, SourceTable) else read_source_table(
        source, masks, source_name=source_name, limit=limit)
    todo = [r for r in table.rows if r.mask is None]
    key = StageKey(STAGE, {**dataclasses.asdict(cfg), **backend_for("mask", cfg).fingerprint(cfg), "vet": VET_VERSION},
                   {"photos": combine([r.source_id for r in todo])})
    status = pin(out, key, on_change=on_change)
    batches = [todo[i:i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    shards = [Shard(f"batch-{k:05d}", b, tuple(r.source_id for r in b)) for k, b in enumerate(batches)]
    pending = [s for s in mine(shards, rank, world_size)
               if not marker_matches(out, s.name, s.fingerprint(key.fingerprint))]
    summary.skipped = sum(len(s.items) for s in mine(shards, rank, world_size)) - sum(len(s.items) for s in pending)
    if pending:
        backend = backend_for("mask", cfg)(cfg, device)
        if backend.fits_on_hand_masks:
            trained = [r for r in table.rows if r.mask is not None]
            log.info("%s masks: fit on %d photos with hand masks", backend.name,
                     backend.fit(_training_pairs(trained)))
        ticks = iter(progress(range(sum(len(s.items) for s in pending)), desc="masks"))
        for shard in pending:
            _run_batch(out, shard, key.fingerprint, backend, cfg, ticks, prefixed=bool(table.parts))
    if world_size > 1:  # the index is the whole folder's: written by a single-process run
        return summary.stop()
    entries = _collect(out, [s.name for s in shards])
    write_auto_index(out, entries)
    for e in entries:
        if e["accepted"]:
            summary.done += 1
        else:
            summary.reject(e["reason"])
    summary.status = outcome(status, summary)
    return summary.stop()  # done / rejected: the whole folder's; skipped: photos of batches already done


def _run_batch(out: Path, shard: Shard, stage_fp: str, backend, cfg: MasksConfig, ticks,
               prefixed: bool = False) -> None:
    entries, items = [], []
    index = int(shard.name.rsplit("-", 1)[1])
    for row in shard.items:
        entry, item = _mask_one(out, row, backend, cfg, prefixed)
        entries.append(entry)
        if item is not None:
            items.append(item)
        next(ticks, None)
    accepted = sum(e["accepted"] for e in entries)
    write_sheet(out / "sheets" / f"batch-{index:05d}.png", items,
                f"batch {index}: {backend.method} {backend.version}, {accepted} of {len(entries)} accepted "
                f"(min confidence {cfg.min_confidence}); red lesion, green skin, blue marker, dark background")
    body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries)
    atomic_write(out / _entries_file(shard.name), body.encode())
    write_marker(out, shard.name, shard.fingerprint(stage_fp), photos=len(entries))  # last: the batch is done


def _mask_one(out: Path, row: SourceRow, backend, cfg: MasksConfig,
              prefixed: bool = False) -> tuple[dict, SheetItem | None]:
    """`prefixed`: several sources in one folder, so the file is named `<source>-<stem>` (two sources may
    share a stem, e.g. two DDI-layout clinics' `000001.png`)."""
    stem = row.source_id.replace(":", "-", 1) if prefixed else row.source_id.split(":", 1)[1]
    entry = {"source_id": row.source_id, "image": row.image.name, "file": None, "method": backend.method,
             "version": f"{backend.version}+vet{VET_VERSION}", "confidence": None, "min_confidence": cfg.min_confidence,
             "accepted": False, "reason": None, "detail": None}
    try:  # the same decoding as ingest: any mode -> faithful 8-bit RGB, or its named reason
        rgb = read_photo(row.image.read_bytes(), str(row.image))
    except SampleRejected as e:
        entry.update(reason=e.reason, detail=e.detail)
        return entry, None
    result = backend.segment(rgb)
    checked = vet(rgb, result.label_map, result.confidence)  # text, background, rulers; outline plausibility
    entry.update(confidence=checked.confidence, backend_confidence=result.confidence, vet=checked.factors,
                 lesion_frac=round(float((checked.label_map == LABEL_LESION).mean()), 4))
    if checked.confidence < cfg.min_confidence:
        entry.update(reason="mask_low_confidence",
                     detail=f"{row.image.name}: automatic mask confidence {checked.confidence:.2f} < "
                            f"masks.min_confidence {cfg.min_confidence} ({backend.method} {backend.version}: "
                            f"{result.confidence:.2f} x plausibility {checked.factors['plausibility']}: "
                            f"{checked.detail()}); draw a mask by hand or lower the threshold after checking "
                            "the review sheet")
    else:
        entry.update(accepted=True, file=auto_mask_file(stem))
        write_label_map(out / entry["file"], checked.label_map)
    return entry, SheetItem(stem, rgb, checked.label_map, checked.confidence, entry["accepted"])


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


def _entries_file(name: str) -> str:
    return f"entries/{name}.jsonl"


def _collect(out: Path, names: list[str]) -> list[dict]:
    return [json.loads(line) for name in names
            for line in (out / _entries_file(name)).read_text().splitlines() if line.strip()]
