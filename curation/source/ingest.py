"""Ingest a source folder (DDI layout or Fitzpatrick17k layout) into a real StageStore, nothing lost.

Metadata is validated by `curation.source.metadata` (bad rows -> rejections naming file, line, column,
value and fix); then each kept row's image is decoded and its mask read (bad files -> rejections).
`ingest.json` in the store reconciles the counts (inputs = kept + rejected, or the run fails) and
names the source: its name (the id prefix: the layout, `ddi` or `fitz17k`, unless overridden), layout
and fingerprint (table, image and mask bytes). A rerun reuses the ingest only for the same fingerprint.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np

from builder.core.errors import BuildError, SampleRejected, SourceError
from builder.core.fingerprint import combine, source_fingerprint
from builder.core.progress import StageSummary, progress
from builder.core.schema import AutoMask, MaskRejection, Record, Rejection, digest, make_sample_id
from builder.core.stage import Shard, StageKey, outcome, pin
from builder.core.store import StageStore, atomic_write, encode_png
from curation.source.images import MIN_SIDE_PX, read_photo
from curation.source.masks import MaskError, read_auto_index, read_binary_masks, read_sddi_mask
from curation.source.metadata import DISEASE_MAP, SourceRow, SourceTable, load_disease_map, read_source_table

log = logging.getLogger(__name__)
SHARD = "ingest"
COUNTS_FILE = "ingest.json"
__all__ = ["DISEASE_MAP", "ingest_source", "load_disease_map", "plan_ingest", "read_counts", "read_source_info"]


@dataclasses.dataclass(frozen=True)
class IngestPlan:
    """A source's validated table, its rows with their automatic masks, its identity and the store's key."""

    table: SourceTable
    items: list  # (SourceRow, automatic-mask entry or None)
    info: dict
    key: StageKey


def plan_ingest(source: Path, masks: Path | None, *, source_name: str | None = None, limit: int | None = None,
                disease_map: dict[str, str] | None = None, auto_masks: Path | None = None,
                min_side_px: int = MIN_SIDE_PX, table: SourceTable | None = None,
                discarded_masks: dict[str, str] | None = None) -> IngestPlan:
    """Read and validate the metadata table and fingerprint the files it names; no image is decoded.
    `table`: the table already read with the same source, masks, name and limit (the build reads once).
    `discarded_masks`: source id -> review criterion of automatic masks discarded in human review; such a
    photo keeps no mask (reason `mask_discarded_in_review`), and the plan's key changes with them."""
    if table is None:
        source = Path(source)
        if not source.is_dir():
            raise SourceError(f"--source {source} is not a folder; pass the folder holding ddi_metadata.csv "
                              "(DDI) or metadata.csv (Fitzpatrick17k)")
        table = read_source_table(source, masks, source_name=source_name, limit=limit, disease_map=disease_map)
    parts = table.parts or (table,)
    folders = [p.mask_dir for p in table.parts] if table.parts else [Path(masks) if masks else Path(source) / "masks"]
    items = [item for part, folder in zip(parts, folders)
             for item in _with_auto_masks(part.rows, folder, auto_masks, discarded_masks or {})]
    items.sort(key=lambda item: item[0].source_id)
    info = describe_source(table, [row for row, _ in items])  # automatic masks too
    settings = {"limit": limit, "disease_map": combine(sorted((disease_map or load_disease_map()).items())),
                "auto_masks": combine([entry for _, entry in items]), "min_side_px": min_side_px}
    return IngestPlan(table, items, info, StageKey(SHARD, settings, {"source": info["fingerprint"]}))


def ingest_source(source: Path, masks: Path | None, out: StageStore, *, source_name: str | None = None,
                  limit: int | None = None, disease_map: dict[str, str] | None = None,
                  workers: int | None = None, auto_masks: Path | None = None, on_change: str = "reset",
                  plan: IngestPlan | None = None, min_side_px: int = MIN_SIDE_PX) -> StageSummary:
    """Validate every row, write kept photos (PNG) + label maps + Records, reject the rest with reasons.

    Images are decoded (any mode -> 8-bit RGB, `curation.source.images`), re-encoded and written over
    `workers` processes (default: all cores); photos under `min_side_px` on a side are rejected.
    `auto_masks`: a `generate masks` output folder; photos without a hand mask take theirs from it.
    Masks listed in an `auto_masks.jsonl` (there or in the masks folder) are automatic: the record
    carries them in `auto_masks`; a photo whose automatic mask was rejected keeps the reason.
    A finished ingest with the same key (source fingerprint, settings) is reused; a store holding
    another or an edited source is ingested again (`on_change='refuse'` makes that an error).
    `plan` is `plan_ingest`'s result when the caller made it already (the build checks it first).
    """
    summary = StageSummary("ingest")
    plan = plan or plan_ingest(source, masks, source_name=source_name, limit=limit, disease_map=disease_map,
                               auto_masks=auto_masks, min_side_px=min_side_px)
    table, info, key = plan.table, plan.info, plan.key
    status = pin(out, key, on_change=on_change)
    done_fp = Shard(SHARD, []).fingerprint(key.fingerprint)
    if out.shard_done(SHARD, done_fp):
        summary.skipped = len(out.records())
        summary.status = outcome(status, summary)
        return summary.stop()
    if status.startswith("rerun"):
        log.warning("%s: ingesting source %s (fingerprint %s) again: %s", out.root, info["name"],
                    info["fingerprint"], status)
    records, rejections = [], list(table.rejections)
    for rec in _map(_ingest_one, [(row, out, auto, min_side_px) for row, auto in plan.items], workers):
        (rejections if isinstance(rec, Rejection) else records).append(rec)
    rejections.sort(key=lambda r: (r.item_id, r.reason, r.detail))
    for r in rejections:
        summary.reject(r.reason)
    summary.done = len(records)
    counts = _reconcile(table.n_in, records, rejections, table.table, table.layout)
    counts["source"] = info
    if table.parts:  # each source's table, for a holdout decided later on the store alone (`curate --real`)
        counts["tables"] = {part.name: str(part.table) for part in table.parts}
    atomic_write(out.root / COUNTS_FILE, (json.dumps(counts, indent=1, sort_keys=True) + "\n").encode())
    out.finish_shard(SHARD, records, rejections, fingerprint=done_fp)
    summary.status = outcome(status, summary)
    return summary.stop()


def read_counts(store: StageStore) -> dict:
    """The reconciled ingest counts (`in`, `kept`, `rejected`, `by_reason`) of a real store."""
    path = store.root / COUNTS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def read_source_info(store: StageStore) -> dict:
    """The source a real store was ingested from: `name`, `layout`, `table` (file name), `fingerprint`,
    `files` (images and masks fingerprinted); {} when nothing was ingested (or by an older toolkit)."""
    return read_counts(store).get("source") or {}


def describe_source(table: SourceTable, rows: list[SourceRow] | None = None) -> dict:
    """Name, layout and fingerprint of a read source table (no paths: they differ from machine to machine);
    `rows`: the rows as ingested (automatic masks included), default the table's.

    Several sources (`table.parts`): `sources` describes each one as alone, with its subset and how many
    inputs it had; the name, layout and table join theirs with `+`, and the fingerprint covers them all."""
    rows = table.rows if rows is None else rows
    if table.parts:
        each = [{**describe_source(p, [r for r in rows if r.source_id.split(":", 1)[0] == p.name]),
                 "subset": p.subset, "in": p.n_in} for p in table.parts]
        return {"name": table.name, "layout": table.layout, "table": " + ".join(e["table"] for e in each),
                "files": sum(e["files"] for e in each), "sources": each,
                "fingerprint": combine(["sources", *(e["fingerprint"] for e in each)])}
    files = []
    for row in rows:
        files.append((f"image:{row.image.relative_to(table.root).as_posix()}", row.image))
        files += [(f"{role}:{p.name}", p) for role, p in (("mask", row.mask), ("nonskin", row.nonskin)) if p]
    return {"name": table.name, "layout": table.layout, "table": table.table.name, "files": len(files),
            "fingerprint": source_fingerprint(table.name, table.layout, table.table, files)}


def _reconcile(n_in: int, records: list[Record], rejections: list[Rejection], table: Path, layout: str) -> dict:
    if n_in != len(records) + len(rejections):  # a bug, not bad data: never publish after losing rows
        raise BuildError(f"ingest lost inputs: {n_in} in, {len(records)} kept + {len(rejections)} rejected")
    return {"table": str(table), "layout": layout, "in": n_in, "kept": len(records),
            "rejected": len(rejections), "by_reason": dict(sorted(Counter(r.reason for r in rejections).items()))}


def _map(fn, items: list, workers: int | None):
    """`fn` over items in order, in processes when worth it (PNG encoding dominates ingest time)."""
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(items) < 2 * workers:
        return list(progress((fn(x) for x in items), desc="ingest", total=len(items)))
    from builder.core.workers import worker_pool

    with worker_pool(workers) as pool:
        return list(progress(pool.map(fn, items, chunksize=4), desc="ingest", total=len(items)))


def _with_auto_masks(rows: list[SourceRow], masks: Path, auto_dir: Path | None,
                     discarded: dict[str, str]) -> list[tuple[SourceRow, dict | None]]:
    """Each row with its automatic-mask entry (None for hand masks); rows without one take it from `auto_dir`.
    An accepted automatic mask that review `discarded` becomes a rejected one (the photo keeps no mask)."""
    in_masks, in_auto = read_auto_index(masks), read_auto_index(auto_dir)
    out = []
    for row in rows:
        entry = None
        if row.mask is not None:  # a file in the masks folder: automatic if that folder's index says so
            e = in_masks.get(row.source_id)
            entry = e if e and e["accepted"] and e["file"] == row.mask.name else None
            if entry is not None and row.source_id in discarded:
                row, entry = dataclasses.replace(row, mask=None), _discarded(entry, discarded[row.source_id])
        elif row.source_id in in_auto:
            entry = in_auto[row.source_id]
            if entry["accepted"] and row.source_id in discarded:
                entry = _discarded(entry, discarded[row.source_id])
            elif entry["accepted"]:
                row = dataclasses.replace(row, mask=Path(auto_dir) / entry["file"], nonskin=None)
        out.append((row, entry))
    return out


def _discarded(entry: dict, criterion: str) -> dict:
    return {**entry, "accepted": False, "reason": "mask_discarded_in_review",
            "detail": f"the automatic mask (confidence {entry.get('confidence')}) was discarded in human review "
                      f"({criterion})"}


def _ingest_one(item: tuple[SourceRow, StageStore, dict | None, int]) -> Record | Rejection:
    row, out, auto, min_side_px = item
    def reject(reason: str, detail: str) -> Rejection:
        return Rejection("ingest", row.source_id, reason, f"line {row.line}: {detail}", str(row.image))

    try:
        data = row.image.read_bytes()
        rgb = read_photo(data, str(row.image), min_side_px)
        label_map = read_row_mask(row, *rgb.shape[:2])
    except (SampleRejected, MaskError) as e:
        return reject(e.reason, e.detail)
    png = data if data.startswith(b"\x89PNG") and _is_rgb_png(data) else encode_png(rgb)
    sample_id = make_sample_id("real", digest(png), {"source_id": row.source_id})
    path = out.put_image(sample_id, png)
    if label_map is not None:
        out.put_mask(sample_id, label_map)
    # Healthy and lesion mapping report a failed gate's reason (`mask_rejection`); params publish it.
    failed = MaskRejection(auto["reason"], auto["detail"]) if auto is not None and not auto["accepted"] else None
    params = {"mask_rejected": failed.reason, "mask_rejected_detail": failed.detail} if failed else None
    accepted = auto is not None and auto["accepted"] and label_map is not None
    return Record(sample_id=sample_id, kind="real", skin_tone=row.skin_tone, malignant=row.malignant,
                  disease=row.disease, disease_raw=row.disease_raw, source_ids=[row.source_id],
                  image_path=path, fitzpatrick=row.fitzpatrick, patient_id=row.patient_id, params=params,
                  mask_rejection=failed,
                  auto_masks=(AutoMask(row.source_id, auto["method"], auto["version"], auto["confidence"]),)
                  if accepted else ())


def read_row_mask(row: SourceRow, h: int, w: int) -> np.ndarray | None:
    """The row's label map, or None: a photo without a mask stays a real image (no donor / base)."""
    if row.mask is None:
        return None
    if row.mask.suffix == ".npy":
        return read_sddi_mask(row.mask, h, w)
    return read_binary_masks(row.mask, row.nonskin, h, w)


def _is_rgb_png(data: bytes) -> bool:
    # IHDR colour type byte (offset 25): 2 = truecolour RGB, bit depth (offset 24) 8.
    return len(data) > 26 and data[25] == 2 and data[24] == 8
