"""Export a built version for PatchAlign24: PNG files plus a CSV in its schema, leaked rows excluded.

PatchAlign24 reads `hasher, high, low, fitzpatrick, disease, label` (Fitzpatrick17k conventions):
- `hasher`: the image file name, `<sample_id>.png` in `images/` (PNG bytes copied, never re-encoded);
- `high`: malignant 0/1;
- `low`: integer code of `label` from a fixed table: the 65 joined DDI classes of
  `builder/data/ddi_disease_map.csv` in alphabetical order (codes 0-64), then `healthy` (65), then any
  other disease name met in the data, alphabetically (written to `low_codes.csv` either way, so codes
  are comparable across versions built from DDI);
- `fitzpatrick`: the DDI skin-tone group (12, 34, 56), the column PatchAlign24 groups fairness by;
- `disease`: the raw disease name (`disease_raw`, else the joined name); `label`: the joined name.
Only train and validation rows are exported by default: test-split synthetics derive from held-out
images, so training on them is leakage. Rows the audit flags are excluded and listed in the report.
"""
from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

from builder.core.errors import CgddiError
from builder.core.schema import HEALTHY_DISEASE, KINDS, SKIN_TONES, TONE_NAME_TO_DDI

log = logging.getLogger(__name__)

DISEASE_MAP = Path(__file__).parent / "data" / "ddi_disease_map.csv"
CSV_COLUMNS = ("hasher", "high", "low", "fitzpatrick", "disease", "label")
READ_COLUMNS = ["sample_id", "kind", "split", "skin_tone", "malignant", "disease", "disease_raw",
                "source_ids", "base_id", "donor_id"]


class ExportError(CgddiError):
    """The export was refused (untrusted input or an existing output folder)."""


def base_codes() -> list[str]:
    """Joined DDI classes, alphabetical, then `healthy`: codes 0..N (stable across versions)."""
    with open(DISEASE_MAP, newline="") as f:
        joined = sorted({row["joined_disease"] for row in csv.DictReader(f)})
    return joined + [HEALTHY_DISEASE]


def low_codes(diseases: set[str]) -> dict[str, int]:
    names = base_codes()
    names += sorted(diseases - set(names))
    return {name: i for i, name in enumerate(names)}


def _rows(folder: Path, shards: list[str]):
    """Lineage rows and image bytes of every shard, one row group at a time."""
    import pyarrow.parquet as pq

    for path in shards:
        pf = pq.ParquetFile(folder / path)
        for g in range(pf.num_row_groups):
            t = pf.read_row_group(g, columns=READ_COLUMNS + ["image"])
            images = t.column("image").combine_chunks().field("bytes").to_pylist()
            yield from zip(t.drop_columns(["image"]).to_pylist(), images)


def export_patchalign(folder: Path, out: Path, splits: tuple[str, ...] = ("train", "validation"),
                      test_ids: set[str] | None = None, overwrite: bool = False) -> dict:
    """Write `out/images/*.png`, `out/patchalign.csv`, `out/low_codes.csv`, `out/lineage.csv`, a report
    (holding `out`'s lock: a second export into it refuses)."""
    from builder.core.lock import hold

    with hold(out, command="export patchalign"):
        return _export(folder, out, splits, test_ids, overwrite)


def _export(folder: Path, out: Path, splits: tuple[str, ...], test_ids: set[str] | None, overwrite: bool) -> dict:
    from builder.audit import audit_folder, collect_shards

    # 1. Audit first: untrusted files stop the export; leaked rows are left out.
    report = audit_folder(folder, test_ids=test_ids)
    if report.integrity:
        first = report.integrity[0]
        raise ExportError(f"{folder} fails its integrity checks ({len(report.integrity)} problems, first: "
                          f"{first['problem']} {first['path']}); run `python -m builder audit {folder}` "
                          "and rebuild before exporting")
    leaked = {i["sample_id"]: i["reason"] for i in report.leaks}
    _prepare_out(out, overwrite)
    # 2. Stream rows; copy PNG bytes as they are.
    kept, excluded, seen = [], {"leaked": 0, "other_split": 0}, set()
    for row, image in _rows(folder, collect_shards(folder)):
        if row["sample_id"] in seen:
            continue  # the same row listed by several configs
        seen.add(row["sample_id"])
        if row["split"] not in splits:
            excluded["other_split"] += 1
        elif row["sample_id"] in leaked:
            excluded["leaked"] += 1
        else:
            (out / "images" / f"{row['sample_id']}.png").write_bytes(image)
            kept.append(row)
    # 3. CSVs, sorted by id (deterministic), and the report.
    kept.sort(key=lambda r: r["sample_id"])
    codes = low_codes({r["disease"] for r in kept})
    _write_csvs(out, kept, codes)
    summary = {"folder": str(folder), "version": report.version, "splits": list(splits), "rows": len(kept),
               "excluded": excluded, "leaked": dict(sorted(leaked.items())),
               "audit_ok_apart_from_excluded_rows": not report.integrity}
    (out / "export_report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ExportError(f"{out} exists and is not empty; pass --overwrite or choose another --out")
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True, exist_ok=True)


def _write_csvs(out: Path, rows: list[dict], codes: dict[str, int]) -> None:
    with open(out / "patchalign.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([f"{r['sample_id']}.png", int(r["malignant"]), codes[r["disease"]],
                        TONE_NAME_TO_DDI[SKIN_TONES[r["skin_tone"]]], r["disease_raw"] or r["disease"],
                        r["disease"]])
    with open(out / "low_codes.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["low", "label"])
        w.writerows((i, name) for name, i in sorted(codes.items(), key=lambda kv: kv[1]))
    with open(out / "lineage.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hasher", "sample_id", "kind", "split", "source_ids", "base_id", "donor_id"])
        for r in rows:
            w.writerow([f"{r['sample_id']}.png", r["sample_id"], KINDS[r["kind"]], r["split"],
                        ";".join(r["source_ids"] or []), r["base_id"] or "", r["donor_id"] or ""])
