"""Hand-offs in the field's generic formats: an ImageFolder tree and WebDataset tar shards.

Both keep the version's own splits (train / validation / test, leakage-free as built) and lesion
rows only unless healthy rows are asked for (then under their own label, `healthy`). The label is
a choice: `malignancy` (benign / malignant, the trainers' task), `disease` or `skin_tone`.

- ImageFolder: `<out>/<split>/<label>/<sample_id>.png` (torchvision's `ImageFolder` per split, and
  the Hub's `imagefolder` loader) plus `<out>/<split>/metadata.jsonl` (`file_name` relative to the
  split, the label, every published column but the image and mask; `fitzpatrick` -1 where unknown, as
  Fitzpatrick17k writes it), PNG bytes as published. A row's segmentation mask, when it has one, goes to
  the parallel tree `<out>/masks/<split>/<label>/<sample_id>.png` (outside the split folders, which an
  `ImageFolder` would otherwise read as images), named by `mask_file` in the metadata ("" for none).
- WebDataset: `<out>/<split>-NNNNNN.tar` shards of at most `shard_mb` MB and `shard_count`
  samples (sized for streaming: one shard is one sequential read), each sample
  `<sample_id>.png`, `<sample_id>.cls` (the label's index in `labels.json`), `<sample_id>.json`
  (the published columns) and, for a row with a segmentation mask, `<sample_id>.mask.png`. Tar headers carry a fixed time and owner: the same version gives the
  same bytes.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path

from builder.core.errors import ExportError
from builder.core.schema import HEALTHY_DISEASE, KINDS, SKIN_TONES

log = logging.getLogger(__name__)

LABELS = ("malignancy", "disease", "skin_tone")
META = ["sample_id", "kind", "split", "skin_tone", "fitzpatrick", "malignant", "disease", "disease_raw",
        "source_ids"]


def label_of(row: dict, label: str) -> str:
    if row["disease"] == HEALTHY_DISEASE:
        return HEALTHY_DISEASE
    if label == "malignancy":
        return "malignant" if row["malignant"] else "benign"
    return str(row[label])


def published_rows(folder: Path, include_healthy: bool):
    """(split, row, PNG bytes) of every published row once (the row's `mask`: its PNG bytes or None), split by split (shards in path order, one
    at a time: bounded memory), after the folder's integrity checks (a tampered folder is refused
    before any row is read)."""
    from builder.build.shards import iter_shard_rows
    from builder.published.audit import AuditReport, check_manifest

    folder = Path(folder).resolve()
    report = AuditReport(target=str(folder))
    shards = check_manifest(folder, report)
    if report.integrity:
        first = report.integrity[0]
        raise ExportError(f"{folder} fails its integrity checks ({len(report.integrity)} problems, first: "
                          f"{first['problem']} {first['path']}); run `python -m builder audit {folder}` first")
    seen = set()
    for path in sorted(shards, key=lambda p: (Path(p).name.split("-", 1)[0], p)):  # split, then kind
        for row, image in iter_shard_rows(folder / path, META + ["mask"]):
            row = _decode(row)
            row["mask"] = row["mask"]["bytes"] if row["mask"] else None
            if row["sample_id"] not in seen and (include_healthy or row["disease"] != HEALTHY_DISEASE):
                seen.add(row["sample_id"])  # a row listed by several configs is written once
                yield row["split"], row, image


HANDOFF_RE = re.compile(r"^(train|validation|test)(-\d{6}\.tar)?$|^labels\.json$|^masks$")  # what a hand-off writes


def _prepare(folder: Path, out: Path, overwrite: bool) -> Path:
    """The export's own rules (`builder.published.export`): never into or above a folder it reads, and
    `--overwrite` empties only a folder a hand-off export made (its marker), holding nothing else."""
    from builder.published.export import _prepare_out, check_out

    folder, out = Path(folder).resolve(), Path(out).resolve()
    check_out(out, folder, None)
    _prepare_out(out, overwrite, made=lambda name: bool(HANDOFF_RE.match(name)), images=False)
    return out


def _finish(out: Path) -> None:
    from builder.published.export import EXPORT_MARKER, _write_marker

    _write_marker(out / EXPORT_MARKER, "done")


def _check(folder: Path, out: Path, label: str) -> None:
    if label not in LABELS:
        raise ExportError(f"--label {label!r}: expected one of {', '.join(LABELS)}")


def _file(row: dict, name: str) -> str:
    """`<label>/<sample id>.png`, both checked before they become a path (names from data)."""
    from builder.core.layout import is_file_name

    for what, value in (("sample_id", row["sample_id"]), ("label", name)):
        if not is_file_name(value):
            raise ExportError(f"{what} {value!r} cannot name a file or folder (a path, or unsafe characters); "
                              "choose another --label, or rebuild the version (its audit fails on such ids)")
    return f"{name}/{row['sample_id']}.png"


def _meta(row: dict, typed: bool = False) -> dict:
    """The published columns as plain values; `typed`: no nulls (Fitzpatrick17k's -1 for an unknown
    type, "" for no raw disease name), so every split's table infers the same column types."""
    meta = {**row, "source_ids": ";".join(row["source_ids"] or []), "malignant": bool(row["malignant"])}
    if typed:
        meta["fitzpatrick"] = -1 if meta["fitzpatrick"] is None else meta["fitzpatrick"]
        meta["disease_raw"] = meta["disease_raw"] or ""
    return meta


def export_imagefolder(folder: Path, out: Path, *, label: str = "malignancy", include_healthy: bool = False,
                       overwrite: bool = False) -> dict:
    """Write the ImageFolder tree; returns counts per split and label."""
    _check(folder, out, label)
    out = _prepare(folder, out, overwrite)
    counts: Counter = Counter()
    tables: dict[str, list[dict]] = {}
    for split, row, image in published_rows(folder, include_healthy):
        name, mask = label_of(row, label), row.pop("mask")
        target = out / split / _file(row, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image)
        mask_file = f"masks/{split}/{_file(row, name)}" if mask is not None else ""
        if mask is not None:
            (out / mask_file).parent.mkdir(parents=True, exist_ok=True)
            (out / mask_file).write_bytes(mask)
        tables.setdefault(split, []).append({"file_name": f"{name}/{target.name}", "label": name,
                                             "mask_file": mask_file, **_meta(row, typed=True)})
        counts[(split, name)] += 1
    for split, table in tables.items():  # JSON keeps every split's column types equal (datasets checks)
        (out / split / "metadata.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in table))
    _finish(out)
    return _summary(counts, label, include_healthy)


def export_webdataset(folder: Path, out: Path, *, label: str = "malignancy", include_healthy: bool = False,
                      overwrite: bool = False, shard_mb: int = 256, shard_count: int = 10000) -> dict:
    """Write WebDataset tar shards per split and `labels.json`; returns counts and the shard files."""
    try:
        import webdataset as wds
    except ImportError as e:
        raise ExportError("export webdataset needs the webdataset package: "
                          'pip install "cgddi-toolkit[webdataset]"') from e
    _check(folder, out, label)
    if shard_mb < 1 or shard_count < 1:
        raise ExportError(f"--shard-mb {shard_mb} / --shard-count {shard_count}: expected positive numbers")
    out = _prepare(folder, out, overwrite)
    names = label_names(folder, label, include_healthy)
    counts: Counter = Counter()
    sinks: dict[str, object] = {}
    try:
        for split, row, image in published_rows(folder, include_healthy):
            if split not in sinks:
                sinks[split] = wds.ShardWriter(str(out / f"{split}-%06d.tar"), maxsize=shard_mb * 1_000_000,
                                               maxcount=shard_count, verbose=0, mtime=0, user="cgddi", group="cgddi")
            name, mask = label_of(row, label), row.pop("mask")
            sample = {"__key__": row["sample_id"], "png": image, "cls": str(names.index(name)),
                      "json": json.dumps(_meta(row), sort_keys=True)}
            sinks[split].write(sample if mask is None else {**sample, "mask.png": mask})
            counts[(split, name)] += 1
    finally:
        for sink in sinks.values():
            sink.close()
    (out / "labels.json").write_text(json.dumps({"label": label, "names": names}, indent=2) + "\n")
    summary = _summary(counts, label, include_healthy)
    summary["shards"] = sorted(p.name for p in out.glob("*.tar"))
    _finish(out)
    return summary


def _decode(row: dict) -> dict:
    """ClassLabel integers as their names (`disease` is decoded by the shard reader)."""
    if isinstance(row.get("kind"), int):
        row["kind"] = KINDS[row["kind"]]
    if isinstance(row.get("skin_tone"), int):
        row["skin_tone"] = SKIN_TONES[row["skin_tone"]]
    return row


def label_names(folder: Path, label: str, include_healthy: bool) -> list[str]:
    """Every label value the rows take, sorted: the `cls` indices (read from the shards' columns only)."""
    import pyarrow.parquet as pq

    from builder.core.schema import shard_disease_names

    names = set()
    for path in sorted(Path(folder).glob("data/*/*.parquet")):
        pf = pq.ParquetFile(path)
        table = pf.read(columns=["disease", "malignant", "skin_tone"]).to_pylist()
        diseases = shard_disease_names(pf.schema_arrow)
        for row in table:
            row = _decode({**row, "disease": diseases[row["disease"]]})
            if include_healthy or row["disease"] != HEALTHY_DISEASE:
                names.add(label_of(row, label))
    return sorted(names)


def _summary(counts: Counter, label: str, include_healthy: bool) -> dict:
    per_split: dict[str, dict] = {}
    for (split, name), n in sorted(counts.items()):
        per_split.setdefault(split, {})[name] = n
    return {"label": label, "include_healthy": include_healthy, "rows": sum(counts.values()), "by_split": per_split}
