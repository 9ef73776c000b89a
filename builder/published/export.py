"""Exports for PatchAlign24 and FairDisCo: train + test CSVs in their DDI encodings, images under one root.

Both trainers read the DDI CSV that FairDisCo's `data_play_ddi.ipynb` builds (PatchAlign24 forked it):
DDI's columns plus `high` = int(malignant), `fitzpatrick` = 1/2/3 for DDI tone groups 12/34/56,
`hasher` = the image file name under the image root, `low` = pandas category codes of the raw DDI
`disease` (78 names, alphabetical: melanoma-in-situ = 47), `REWT_weights` and `RESM_weights` (their
reweighting and resampling weights per fitzpatrick x high cell). Their loaders read
`os.path.join(image_dir, hasher)` with cv2 and train on `high` (condition) and `fitzpatrick - 1` (type).

The export writes `train.csv` and `test.csv` in those encodings and `images/` as the one root:
synthetic PNGs (bytes as published, or resized with `image_size`), and with `real` (the user's DDI
folder) symlinks to the real photos, never copies. Test = the version's held-out real images
(PatchAlign24's holdout in v1.1); no train row derives from a test image (audit + lineage check).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from builder.core.errors import ExportError
from builder.core.schema import DISEASE_MAP_FILE, HEALTHY_DISEASE, KINDS, SKIN_TONES, TONE_NAME_TO_DDI

log = logging.getLogger(__name__)

CSV_COLUMNS = ("DDI_ID", "DDI_file", "skin_tone", "malignant", "disease", "high", "fitzpatrick", "hasher", "low",
               "REWT_weights", "RESM_weights", "kind", "sample_id", "source_ids")
READ_COLUMNS = ["sample_id", "kind", "split", "skin_tone", "malignant", "disease", "disease_raw", "source_ids"]
FITZPATRICK_OF_DDI_TONE = {12: 1, 34: 2, 56: 3}  # data_play_ddi.ipynb
EXPORT_MARKER = ".cgddi-export.json"  # names an export's folder: the only kind --overwrite empties
EXPORT_FILES = ("train.csv", "test.csv", "low_codes.csv", "TRAINING.md", "export_report.json", "images",
                EXPORT_MARKER)


@dataclasses.dataclass(frozen=True)
class Target:
    tool: str
    repo: str
    script: str
    image_dir_line: str  # where the script names its DDI image folder
    own_split: str  # the split its script makes by itself (replaced by ours)


TARGETS = {
    "patchalign": Target("PatchAlign24", "aayushmanace/PatchAlign24", "train_PatchAlign_DDI_InDomain.py",
                         "image_dir = 'images'", "train_test_split(df, df['high'], test_size=0.2, "
                                                 "random_state=12140420)"),
    "fairdisco": Target("FairDisCo", "siyi-wind/FairDisCo", "train_DisCo.py",
                        "image_dir = '/bigdata/siyiplace/data/skin_lesion/ddidiversedermatologyimages/'",
                        "train_test_split(df, df['high'], test_size=0.2, random_state=64)"),
}


def raw_ddi_diseases() -> list[str]:
    """The 78 raw DDI disease names, alphabetical: PatchAlign24's `low` codes 0-77."""
    with open(DISEASE_MAP_FILE, newline="") as f:
        return sorted({row["ddi_disease"] for row in csv.DictReader(f)})


def low_codes(extra: set[str]) -> dict[str, int]:
    """Raw DDI names keep PatchAlign24's codes; `healthy` is 78; other names follow, alphabetically."""
    names = raw_ddi_diseases() + [HEALTHY_DISEASE]
    names += sorted(extra - set(names))
    return {name: i for i, name in enumerate(names)}


def export(folder: Path, out: Path, target: str = "patchalign", *, real: Path | None = None,
           train_splits: tuple[str, ...] = ("train", "validation"), test_ids: set[str] | None = None,
           image_size: int | None = None, overwrite: bool = False) -> dict:
    """Write `out/{train,test}.csv`, `out/images/`, `out/low_codes.csv`, `out/TRAINING.md`, a report
    (holding `out`'s lock: a second export into it refuses)."""
    from builder.core.lock import hold

    with hold(out, command=f"export {target}"):
        return _export(folder, out, target, real, train_splits, test_ids, image_size, overwrite)


def _export(folder: Path, out: Path, target: str, real: Path | None, train_splits: tuple[str, ...],
            test_ids: set[str] | None, image_size: int | None, overwrite: bool) -> dict:
    from builder.published.audit import AuditReport, audit_folder

    if target not in TARGETS:
        raise ExportError(f"export target {target!r}: expected one of {', '.join(TARGETS)}")
    if image_size is not None and not 16 <= image_size <= 4096:
        raise ExportError(f"--image-size {image_size}: expected a side in pixels, 16-4096 (e.g. 224)")
    folder, out = Path(folder).resolve(), Path(out).resolve()
    check_out(out, folder, Path(real).resolve() if real else None)
    from builder.published.audit import check_manifest

    pre = AuditReport(target=str(folder))
    shards = check_manifest(folder, pre)
    _refuse_untrusted(folder, pre)  # tampered files stop the export before any shard is read
    prefix, held = _held_out(folder, real, test_ids)
    report = audit_folder(folder, test_ids=held or None, checked=(pre, shards))
    _refuse_untrusted(folder, report)
    leaked = {i["sample_id"]: i["reason"] for i in report.leaks}
    _prepare_out(out, overwrite)
    rows, excluded = _synthetic_rows(folder, out, train_splits, leaked, held, image_size, with_test=real is None)
    reals, skipped = _real_rows(Path(real), out, prefix, held) if real else ([], [])
    rows += reals
    codes = low_codes({r["disease"] for r in rows})
    _add_codes(rows, codes)
    train = sorted((r for r in rows if r["_split"] == "train"), key=lambda r: r["hasher"])
    test = sorted((r for r in rows if r["_split"] == "test"), key=lambda r: r["hasher"])
    _check_no_test_lineage(train, held)
    _write_csv(out / "train.csv", train)
    _write_csv(out / "test.csv", test)
    _write_codes(out / "low_codes.csv", codes)
    (out / "TRAINING.md").write_text(training_text(target, out))
    summary = {"target": target, "folder": str(folder), "version": report.version, "train_rows": len(train),
               "test_rows": len(test), "train_by_kind": dict(Counter(r["kind"] for r in train)),
               "test_by_kind": dict(Counter(r["kind"] for r in test)), "held_out_sources": len(held),
               "excluded": excluded, "real_rows_without_image": skipped, "leaked": dict(sorted(leaked.items())),
               "image_size": image_size}
    (out / "export_report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _write_marker(out / EXPORT_MARKER, "done")
    return summary


def _refuse_untrusted(folder: Path, report) -> None:
    if report.integrity:
        first = report.integrity[0]
        raise ExportError(f"{folder} fails its integrity checks ({len(report.integrity)} problems, first: "
                          f"{first['problem']} {first['path']}); run `python -m builder audit {folder}` "
                          "and rebuild before exporting")


def _held_out(folder: Path, real: Path | None, test_ids: set[str] | None) -> tuple[str, set[str]]:
    """The source-id prefix of the version, and its held-out (test) source ids: the test-ids file,
    plus the holdout recomputed on the real table (the same call the build made) when given."""
    from builder.core.errors import IntegrityProblem
    from builder.published.audit import collect_shards
    from builder.published.files import open_shard

    ids, held, every = Counter(), set(test_ids or ()), set()
    for path in collect_shards(folder):
        try:  # size limits before anything is decompressed (the audit that follows reports the rest)
            table = open_shard(folder, path).read(columns=["source_ids", "split", "kind"])
        except Exception as e:  # noqa: BLE001 (IntegrityProblem, or a page pyarrow cannot decode)
            detail = str(e) if isinstance(e, IntegrityProblem) else f"{path}: {str(e)[:200]}"
            raise ExportError(f"{folder} fails its integrity checks ({detail}); run `python -m builder audit "
                              f"{folder}` and rebuild before exporting") from None
        for row in table.to_pylist():
            sources = row["source_ids"] or []
            every.update(sources)
            ids.update(s.split(":", 1)[0] for s in sources)
            if row["split"] == "test" and KINDS[row["kind"]] in ("real", "healthy") and len(sources) == 1:
                held |= set(sources)  # a test image's own healthy synthetic: the audit's inference too
    prefix = ids.most_common(1)[0][0] if ids else "ddi"
    if test_ids:  # a file for another source would hold out nothing and pass silently (issue 10)
        from builder.core.splits_file import check_test_ids

        check_test_ids(test_ids, every, where=str(folder), hint="pass the build's splits.csv or its test ids")
    if real is not None:
        from curation.source.metadata import find_table
        from curation.splits import holdout_test_ids

        cfg = json.loads((folder / "manifest.json").read_text()).get("config", {}).get("curation", {})
        if cfg.get("split_method") == "patchalign24":
            held |= set(holdout_test_ids(find_table(Path(real))[1], prefix, cfg.get("patchalign24_csv")))
        elif not test_ids:
            raise ExportError(f"{folder} was not split by PatchAlign24's holdout; pass --test-ids (the build's "
                              "splits.csv) so real rows go to the right side")
    return prefix, held


def _synthetic_rows(folder: Path, out: Path, train_splits, leaked: dict, held: set[str], image_size,
                    with_test: bool) -> tuple[list[dict], dict]:
    from builder.published.audit import collect_shards

    rows, excluded, seen = [], Counter(), set()
    for row, image in _shard_rows(folder, collect_shards(folder)):
        if row["sample_id"] in seen:
            continue  # one row listed by several configs
        seen.add(row["sample_id"])
        split = "train" if row["split"] in train_splits else "test" if row["split"] == "test" and with_test else None
        if split is None:
            excluded["other_split"] += 1
        elif split == "train" and (row["sample_id"] in leaked or set(row["source_ids"]) & held):
            excluded["leaked"] += 1
        else:
            hasher = f"{_sample_file_stem(row['sample_id'])}.png"
            (out / "images" / hasher).write_bytes(_resized(image, image_size) if image_size else image)
            rows.append(_csv_row(row, hasher, split))
    return rows, dict(sorted(excluded.items()))


def _sample_file_stem(sample_id) -> str:
    """A sample id that becomes a file name under images/ (audit reports a bad one first; this is the
    last guard before a path is made of it)."""
    from builder.core.layout import is_file_name

    if not is_file_name(sample_id):
        raise ExportError(f"sample_id {sample_id!r} cannot name a file (a path, or unsafe characters); the "
                          "version fails its audit: rebuild it rather than export it")
    return sample_id


def _shard_rows(folder: Path, shards: list[str]):
    from builder.build.shards import iter_shard_rows

    for path in shards:
        yield from iter_shard_rows(folder / path, READ_COLUMNS)


def _csv_row(row: dict, hasher: str, split: str) -> dict:
    tone = TONE_NAME_TO_DDI[SKIN_TONES[row["skin_tone"]]]
    malignant = bool(row["malignant"])
    return {"DDI_ID": "", "DDI_file": hasher, "skin_tone": tone, "malignant": malignant,
            "disease": row["disease_raw"] or row["disease"], "high": int(malignant),
            "fitzpatrick": FITZPATRICK_OF_DDI_TONE[tone], "hasher": hasher, "kind": KINDS[row["kind"]],
            "sample_id": row["sample_id"], "source_ids": ";".join(row["source_ids"] or []), "_split": split,
            "_sources": set(row["source_ids"] or [])}


def _real_rows(real: Path, out: Path, prefix: str, held: set[str]) -> tuple[list[dict], list[str]]:
    """Every row of the user's DDI table, linked (symlink) under images/: test if held out, else train."""
    import polars as pl

    from curation.source.metadata import find_table

    layout, table = find_table(real)
    if layout != "ddi":
        raise ExportError(f"--real {real}: expected DDI's layout (ddi_metadata.csv beside the photos or "
                          "images/); found a Fitzpatrick17k table")
    try:
        df = pl.read_csv(table, infer_schema=False)
    except Exception as e:  # noqa: BLE001 (polars raises several types for a malformed table)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ExportError(f"--real {table}: not a readable CSV table ({first}); fix or re-download it") from None
    mal = next((c for c in ("malignant", "malignancy(malig=1)") if c in df.columns), None)
    if mal is None or not {"DDI_ID", "DDI_file", "skin_tone", "disease"} <= set(df.columns):
        raise ExportError(f"{table}: expected DDI's columns DDI_ID, DDI_file, skin_tone, malignant, disease; "
                          f"found {df.columns}")
    rows, skipped = [], []
    for d in df.iter_rows(named=True):
        row = _real_row(d, mal, real, prefix, held)
        if isinstance(row, str) or os.path.lexists(out / "images" / row["hasher"]):  # why it is left out
            skipped.append(row if isinstance(row, str) else f"{row['hasher']} (named twice)")
            continue
        (out / "images" / row["hasher"]).symlink_to(row.pop("_photo"))
        rows.append(row)
    if skipped:
        log.warning("%d rows of %s have no photo in %s (left out): %s", len(skipped), table, real, skipped[:5])
    return rows, skipped


def _real_row(d: dict, mal: str, real: Path, prefix: str, held: set[str]) -> dict | str:
    """One CSV row of the user's DDI table (with `_photo`, the resolved photo to link), or the reason it
    is left out: a name that is not one file in the folder (`../x`), no readable photo, bad values."""
    from builder.core.layout import is_file_name

    name = (d["DDI_file"] or "").strip()
    label = name or f"DDI_ID {d['DDI_ID']}"
    if not is_file_name(name):
        return f"{label} (not a file name in the folder)"
    photo = next((p for p in (real / name, real / "images" / name) if p.is_file()), None)
    if photo is None or not _readable(photo):  # their loaders crash on an unreadable file
        return label
    try:
        tone, malignant = int(d["skin_tone"]), (d[mal] or "").strip().lower() in ("true", "1")
        fitzpatrick, disease = FITZPATRICK_OF_DDI_TONE[tone], (d["disease"] or "").strip()
    except (KeyError, ValueError, TypeError):
        return f"{label} (skin_tone {d['skin_tone']!r} is not 12, 34 or 56)"
    if not disease:
        return f"{label} (no disease)"
    sid = f"{prefix}:{Path(name).stem}"
    return {"DDI_ID": d["DDI_ID"], "DDI_file": name, "skin_tone": tone, "malignant": malignant,
            "disease": disease, "high": int(malignant), "fitzpatrick": fitzpatrick, "hasher": name,
            "kind": "real", "sample_id": "", "source_ids": sid, "_split": "test" if sid in held else "train",
            "_sources": {sid}, "_photo": photo.resolve()}


def _readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types for corrupt files
        return False


def _add_codes(rows: list[dict], codes: dict[str, int]) -> None:
    """`low`, and the REWT / RESM weights of data_play_ddi.ipynb over every exported row."""
    cells = Counter((r["fitzpatrick"], r["high"]) for r in rows)
    types, conditions = Counter(r["fitzpatrick"] for r in rows), Counter(r["high"] for r in rows)
    for r in rows:
        n = cells[(r["fitzpatrick"], r["high"])]
        r["low"] = codes[r["disease"]]
        r["REWT_weights"] = types[r["fitzpatrick"]] * conditions[r["high"]] / (n * len(rows))
        r["RESM_weights"] = 1 / n


def _check_no_test_lineage(train: list[dict], held: set[str]) -> None:
    bad = [r["hasher"] for r in train if r["_sources"] & held]
    if bad:  # a bug, not bad input: refuse rather than write a leaking CSV
        raise ExportError(f"{len(bad)} train rows derive from held-out test images (e.g. {bad[:3]}); nothing "
                          "trustworthy can be exported: report this")


def _resized(png: bytes, size: int) -> bytes:
    """Shorter side to `size`, then the centre `size` x `size` (as Resize + CenterCrop), PNG."""
    import io

    import numpy as np
    from PIL import Image

    from builder.core.store import encode_png

    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
        w, h = im.size
        scale = size / min(w, h)
        im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.BILINEAR)
        left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
        return encode_png(np.asarray(im.crop((left, top, left + size, top + size))))


def check_out(out: Path, folder: Path, real: Path | None) -> None:
    """`out` (resolved) must be a folder of its own: not inside, equal to or above the published version
    or the user's DDI folder, and not the build root or above it (it holds every version and the work
    folders; a new folder inside it is fine)."""
    reads = (("the published version", folder, False), ("the build root", folder.parent, True),
             ("your --real DDI folder", real, False))
    for what, there, may_be_inside in reads:
        if there is None:
            continue
        if out == there or out in there.parents or (there in out.parents and not may_be_inside):
            where = "inside" if there in out.parents else "the folder of" if out == there else "a folder above"
            raise ExportError(f"--out {out} is {where} {what} {there}; an export never writes into, or replaces, "
                              "a folder it reads: choose a new folder outside it (e.g. exports/patchalign)")


def _prepare_out(out: Path, overwrite: bool) -> None:
    """An empty (or new) `out`, marked as an export. A folder is emptied only when it is an export's
    (its marker says so) and holds nothing else: `--overwrite` replaces a finished export, and an
    export that was interrupted (its marker still says `running`) is redone without it."""
    marker = out / EXPORT_MARKER
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"--out {out} is a link or a file, not a folder; choose a new folder")
    if out.exists() and any(out.iterdir()):
        state = _marker_state(marker)
        foreign = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES)
        if state is None or foreign or (out / "images").is_symlink():
            raise ExportError(f"--out {out} holds files that no export made ({(foreign or ['no export marker'])[:3]}); "
                              "an export never deletes them: choose a new or empty folder")
        if state != "running" and not overwrite:
            raise ExportError(f"{out} holds a finished export; pass --overwrite to replace it, or choose another --out")
        for name in EXPORT_FILES:  # only what an export writes; links are removed, never followed
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(marker, "running")
    (out / "images").mkdir()


def _marker_state(marker: Path) -> str | None:
    try:
        state = json.loads(marker.read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return None
    return state if state in ("running", "done") else None


def _write_marker(marker: Path, state: str) -> None:
    from builder.core.store import atomic_write

    atomic_write(marker, (json.dumps({"made_by": "cgddi-toolkit export", "state": state}) + "\n").encode())


def csv_cell(value):
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading `'`,
    as OWASP's CSV-injection advice says; numbers and other text are written as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)


def _write_codes(path: Path, codes: dict[str, int]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["low", "disease"])
        w.writerows((i, csv_cell(name)) for name, i in sorted(codes.items(), key=lambda kv: kv[1]))


def training_text(target: str, out: Path) -> str:
    """TRAINING.md: the two edits that point the trainer's own script at this export."""
    t = TARGETS[target]
    return f"""# Training {t.tool} on this export

`train.csv` and `test.csv` are in {t.tool}'s DDI encodings; every `hasher` is a file in `images/`.
In a clone of {t.repo}, `{t.script}` builds its own split ({t.own_split}) and then reads the
two CSVs it wrote. Use this export's split instead (held-out real images only in test):

1. replace the `random_holdout` split by
   `train, test = pd.read_csv("{out}/train.csv"), pd.read_csv("{out}/test.csv")`
2. in `custom_load`, replace `{t.image_dir_line}` by `image_dir = "{out}/images"`

then run it as usual, e.g. `python -u {t.script} 20 full ddi {'PatchAlign' if target == 'patchalign' else 'DisCo'}`.
It trains on `high` (malignancy) with `fitzpatrick - 1` as the skin-type target. `low` keeps
PatchAlign24's codes of the raw DDI disease (`low_codes.csv`); `healthy` is {len(raw_ddi_diseases())}.
"""
