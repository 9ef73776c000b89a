"""Exports for PatchAlign24 and FairDisCo: train + test CSVs in their DDI encodings, images under one root.

Both trainers read the DDI CSV that FairDisCo's `data_play_ddi.ipynb` builds (PatchAlign24 forked it):
DDI's columns plus `high` = int(malignant), `fitzpatrick` for DDI tone groups 12/34/56 (1/2/3 for
FairDisCo, 1/3/5 for PatchAlign24: `builder.published.trainers`),
`hasher` = the image file name under the image root, `low` = pandas category codes of the raw DDI
`disease` (78 names, alphabetical: melanoma-in-situ = 47), `REWT_weights` and `RESM_weights` (their
reweighting and resampling weights per fitzpatrick x high cell). Their loaders read
`os.path.join(image_dir, hasher)` with cv2 and train on `high` (condition) and `fitzpatrick - 1` (type).

The export writes `ddi_metadata_code.csv` (what both scripts read first), `train.csv` and `test.csv`
in those encodings (lesion rows only unless healthy rows are asked for) and `images/` as the one root:
synthetic PNGs (bytes as published, or resized with `image_size`), and with `real` (the user's DDI
folder) symlinks to the real photos, never copies. Test = the version's held-out real images
(PatchAlign24's holdout in v1.1) or a holdout chosen at export (`builder.published.holdouts`); no
train row derives from a test image (audit + lineage check).
"""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable

from builder.core.errors import ExportError
from builder.core.schema import DISEASE_MAP_FILE, HEALTHY_DISEASE, KINDS, PUBLISHED_COLUMNS, SKIN_TONES, TONE_NAME_TO_DDI
from builder.published import holdouts
from builder.published.export_real import FITZPATRICK_OF_DDI_TONE, real_rows, table_tones
from builder.published.holdouts import Holdout, id_file, seeded_fold
from builder.published.rules import RULE_COLUMNS, Resolver, row_facts, version_rule
from curation.leakage import check_rule
from builder.published.trainers import METADATA_FILE, TARGETS, encode_tones, training_text

CSV_COLUMNS = ("DDI_ID", "DDI_file", "skin_tone", "malignant", "disease", "high", "fitzpatrick", "hasher", "low",
               "REWT_weights", "RESM_weights", "kind", "sample_id", "source_ids")
READ_COLUMNS = [c.name for c in PUBLISHED_COLUMNS if c.dtype != "image"]  # every column but the pixels
LAYOUTS = ("ddi", "fitzpatrick17k")  # the trainers' DDI scripts, or their Fitzpatrick17k scripts (fitz_layout)
EXPORT_MARKER = ".cgddi-export.json"  # names an export's folder: the only kind --overwrite empties
EXPORT_FILES = ("train.csv", "test.csv", "low_codes.csv", "TRAINING.md", "export_report.json", "images",
                "ddi_metadata_code.csv", "fitzpatrick17k_known_code.csv", EXPORT_MARKER)


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
           image_size: int | None = None, overwrite: bool = False, include_healthy: bool = False,
           holdout_seed: int | None = None, holdout_ids: set[str] | None = None, layout: str = "ddi",
           tone_holdout: str | None = None, min_training_photos: int | None = None, rule: str | None = None,
           sources: tuple[str, ...] | None = None) -> dict:
    """Write `out/{train,test}.csv`, `out/ddi_metadata_code.csv`, `out/images/`, `out/low_codes.csv`,
    `out/TRAINING.md`, a report (holding `out`'s lock: a second export into it refuses).

    Test is the build's own held-out set (plus `test_ids`), unless a holdout is chosen: a seeded
    fold of the source table (`holdout_seed`, needs `real`) or a test-id set (`holdout_ids`), with
    every row placed again from its lineage (`builder.published.holdouts`). Lesion rows only,
    unless `include_healthy`. `layout="fitzpatrick17k"`: the trainers' Fitzpatrick17k scripts'
    files instead (`builder.published.fitz_layout`). `min_training_photos` N leaves out semantic rows
    whose disease's models trained on fewer than N photos (the paper classifies with N = 11: diseases
    with more than 10 training photos). A version of several sources: `sources` keeps the rows whose
    lineage lies in them (`builder.published.export_sources`)."""
    from builder.core.lock import hold

    opts = dict(real=real, train_splits=train_splits, test_ids=test_ids, image_size=image_size,
                overwrite=overwrite, include_healthy=include_healthy, holdout_seed=holdout_seed,
                holdout_ids=holdout_ids, layout=layout, tone_holdout=tone_holdout,
                min_training_photos=min_training_photos, sources=sources)
    with hold(out, command=f"export {target}"):
        return _export(folder, out, target, rule=rule, **opts)


def _export(folder: Path, out: Path, target: str, *, real, train_splits, test_ids, image_size, overwrite,
            include_healthy, holdout_seed, holdout_ids, layout, tone_holdout,
            min_training_photos=None, rule=None, sources=None) -> dict:
    from builder.published import export_sources as xs
    from builder.published.audit import AuditReport, audit_folder, check_manifest

    _check_options(target, image_size, real, holdout_seed, holdout_ids, tone_holdout)
    if layout not in LAYOUTS:
        raise ExportError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    folder, out = Path(folder).resolve(), Path(out).resolve()
    check_out(out, folder, Path(real).resolve() if real else None)
    pre = AuditReport(target=str(folder))
    shards = check_manifest(folder, pre)
    _refuse_untrusted(folder, pre)  # tampered files stop the export before any shard is read
    built = version_rule(folder)
    rule = built if rule is None else rule
    check_rule(rule, "--rule")
    entries = xs.version_sources(folder)
    xs.check_sources(sources, entries, folder)
    prefix, holdout, resolver = _held_out(folder, real, test_ids, holdout_seed, holdout_ids, tone_holdout, entries)
    if real and not xs.kept([f"{prefix}:-"], sources):
        raise ExportError(f"--real {real} holds {prefix}'s photos, not among --sources {','.join(sources)}; "
                          f"add {prefix} to --sources or leave --real out")
    holdout.rule, holdout.relineage = rule, rule != built
    report = audit_folder(folder, test_ids=holdout.held or None, checked=(pre, shards), rule=rule)
    _refuse_untrusted(folder, report)
    leaked = {i["sample_id"]: i["reason"] for i in report.leaks}
    _prepare_out(out, overwrite)
    rows, excluded = _synthetic_rows(folder, out, train_splits, leaked, (holdout, resolver), image_size,
                                     with_test=real is None, include_healthy=include_healthy,
                                     min_photos=min_training_photos, sources=sources)
    reals, skipped = real_rows(Path(real), out, prefix, holdout.held) if real else ([], [])
    rows += reals
    if layout == "fitzpatrick17k":
        xs.check_types(rows, entries)
        train, test = _fitz_files(folder, out, target, rows, real, holdout, include_healthy, excluded)
    else:
        encode_tones(rows, target)
        codes = low_codes({r["disease"] for r in rows})
        _add_codes(rows, codes)
        train, test = _sides(rows, holdout)
        _write_trainer_files(out, target, train, test, codes, holdout, include_healthy)
    with open(out / "TRAINING.md", "a") as f:
        f.write(xs.training_note(train + test, entries, layout))
    summary = {"target": target, "folder": str(folder), "version": report.version, "train_rows": len(train),
               "test_rows": len(test), "train_by_kind": dict(Counter(r["kind"] for r in train)),
               "test_by_kind": dict(Counter(r["kind"] for r in test)), "held_out_sources": len(holdout.held),
               "holdout": holdout.describe(), "include_healthy": include_healthy,
               "excluded": excluded, "real_rows_without_image": skipped, "leaked": dict(sorted(leaked.items())),
               "image_size": image_size, "min_training_photos": min_training_photos, "rule": rule,
               "version_rule": built, "sources": list(sources) if sources else [e["name"] for e in entries],
               "rows_by_lineage": dict(sorted(Counter(xs.lineage(r["_sources"]) for r in train + test).items()))}
    (out / "export_report.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _write_marker(out / EXPORT_MARKER, "done")
    return summary


def _check_options(target: str, image_size, real, holdout_seed, holdout_ids, tone_holdout) -> None:
    if target not in TARGETS:
        raise ExportError(f"export target {target!r}: expected one of {', '.join(TARGETS)}")
    if image_size is not None and not 16 <= image_size <= 4096:
        raise ExportError(f"--image-size {image_size}: expected a side in pixels, 16-4096 (e.g. 224)")
    chosen = [n for n, v in (("--holdout-seed", holdout_seed), ("--test-ids", holdout_ids),
                             ("--tone-holdout", tone_holdout)) if v is not None]
    if len(chosen) > 1:
        raise ExportError(f"{' and '.join(chosen)} each choose the holdout: pass one of them")
    if holdout_seed is not None and real is None:
        raise ExportError(f"--holdout-seed {holdout_seed} needs --real DIR: the fold is drawn over your source "
                          "table's rows in file order, as the trainers draw it")


def _sides(rows: list[dict], holdout: Holdout) -> tuple[list[dict], list[dict]]:
    train = sorted((r for r in rows if r["_split"] == "train"), key=lambda r: r["hasher"])
    test = sorted((r for r in rows if r["_split"] == "test"), key=lambda r: r["hasher"])
    _check_no_test_lineage(train, holdout.held)
    return train, test


def _fitz_files(folder: Path, out: Path, target: str, rows: list[dict], real, holdout: Holdout,
                include_healthy: bool, excluded: dict) -> tuple[list[dict], list[dict]]:
    """The trainers' Fitzpatrick17k layout: its table first, then our split, `<hasher>.jpg` images."""
    from builder.published import fitz_layout

    table = None
    if real is not None:
        from curation.source.metadata import find_table

        layout, table = find_table(Path(real))
        table = table if layout == "fitz17k" else None
    rows, left = fitz_layout.to_fitz_rows(rows, out, fitz_layout.partitions_of(table))
    fitz_layout.check_types(rows, folder)
    excluded.update(left)
    fitz_layout.add_codes(rows, table)
    train, test = _sides(rows, holdout)
    _write_csv(out / fitz_layout.TABLE_FILE, train + test, fitz_layout.COLUMNS)
    _write_csv(out / "train.csv", train, fitz_layout.COLUMNS)
    _write_csv(out / "test.csv", test, fitz_layout.COLUMNS)
    (out / "TRAINING.md").write_text(fitz_layout.training_text(target, out, holdout=holdout.name,
                                                               include_healthy=include_healthy))
    return train, test


def _write_trainer_files(out: Path, target: str, train: list[dict], test: list[dict], codes: dict,
                         holdout, include_healthy: bool) -> None:
    """Every file the trainer's script reads: its `ddi_metadata_code.csv` first, then our split."""
    _write_csv(out / METADATA_FILE, train + test)
    _write_csv(out / "train.csv", train)
    _write_csv(out / "test.csv", test)
    _write_codes(out / "low_codes.csv", codes)
    (out / "TRAINING.md").write_text(training_text(target, out, holdout=holdout.name,
                                                   include_healthy=include_healthy,
                                                   healthy_code=codes[HEALTHY_DISEASE]))


def _refuse_untrusted(folder: Path, report) -> None:
    if report.integrity:
        first = report.integrity[0]
        raise ExportError(f"{folder} fails its integrity checks ({len(report.integrity)} problems, first: "
                          f"{first['problem']} {first['path']}); run `python -m builder audit {folder}` "
                          "and rebuild before exporting")


def _held_out(folder: Path, real: Path | None, test_ids: set[str] | None, holdout_seed: int | None,
              holdout_ids: set[str] | None, tone_holdout: str | None = None,
              entries: list[dict] = ()) -> tuple[str, Holdout, Resolver]:
    """The source-id prefix of the version (several sources: `--real`'s), its held-out (test) source ids:
    a chosen holdout
    (seeded fold, test-id set), else the build's own: its test images, the test-ids file, plus the
    holdout recomputed on the real table (the same call the build made) when given; and the rows'
    resolver for the paper's rule."""
    ids, held, every, tones, resolver = _scan(folder, set(test_ids or ()))
    holdout = _chosen_or_built(folder, real, test_ids, holdout_seed, holdout_ids, tone_holdout,
                               ids, held, every, tones, entries)
    return holdout[0], holdout[1], resolver


def _scan(folder: Path, held: set[str]) -> tuple[Counter, set[str], set[str], dict, Resolver]:
    """One pass over the version's lineage columns: source prefixes, the build's held-out photos, every
    source id, each photo's tone, and what the paper's rule reads (`Resolver`)."""
    from builder.core.errors import IntegrityProblem
    from builder.core.schema import shard_disease_names
    from builder.published.audit import collect_shards
    from builder.published.files import open_shard

    ids, every, tones, resolver = Counter(), set(), {}, Resolver()
    for path in collect_shards(folder):
        try:  # size limits before anything is decompressed (the audit that follows reports the rest)
            pf = open_shard(folder, path)
            names = shard_disease_names(pf.schema_arrow)
            table = pf.read(columns=sorted({"split", "skin_tone", *RULE_COLUMNS}))
        except Exception as e:  # noqa: BLE001 (IntegrityProblem, or a page pyarrow cannot decode)
            detail = str(e) if isinstance(e, IntegrityProblem) else f"{path}: {str(e)[:200]}"
            raise ExportError(f"{folder} fails its integrity checks ({detail}); run `python -m builder audit "
                              f"{folder}` and rebuild before exporting") from None
        for row in table.to_pylist():
            sources, kind = row["source_ids"] or [], KINDS[row["kind"]]
            every.update(sources)
            if kind in ("real", "healthy") and len(sources) == 1:
                tones[sources[0]] = SKIN_TONES[row["skin_tone"]]  # a photo's own tone
            ids.update(s.split(":", 1)[0] for s in sources)
            if row["split"] == "test" and kind in ("real", "healthy") and len(sources) == 1:
                held |= set(sources)  # a test image's own healthy synthetic: the audit's inference too
            resolver.see(kind, row["sample_id"], names[row["disease"]], sources, row_facts(kind, row))
    return ids, held, every, tones, resolver


def _chosen_or_built(folder: Path, real, test_ids, holdout_seed, holdout_ids, tone_holdout,
                     ids: Counter, held: set[str], every: set[str], tones: dict,
                     entries: list[dict] = ()) -> tuple[str, Holdout]:
    from builder.published import export_sources as xs

    prefix = ids.most_common(1)[0][0] if ids else "ddi"
    if real is not None:  # several sources: the one of --real's layout
        prefix, real_layout = xs.real_source(folder, Path(real), entries, prefix)
    if holdout_seed is not None:
        fold = seeded_fold(Path(real), prefix, holdout_seed)
        if len(entries) > 1:
            xs.keep_other_sources(fold, held, prefix)
        return prefix, fold
    if holdout_ids is not None:
        return prefix, id_file(set(holdout_ids), every, folder)
    if tone_holdout is not None:
        table = table_tones(Path(real), prefix) if real is not None else {}
        return prefix, holdouts.tone_holdout(tone_holdout, {**tones, **table}, every | set(table))
    if test_ids:  # a file for another source would hold out nothing and pass silently
        from builder.core.splits_file import check_test_ids

        check_test_ids(test_ids, every, where=str(folder), hint="pass the build's splits.csv or its test ids")
    if real is not None:
        from curation.source.metadata import find_table
        from curation.splits import holdout_test_ids

        cfg = json.loads((folder / "manifest.json").read_text()).get("config", {}).get("curation", {})
        if cfg.get("split_method") == "patchalign24" and len(entries) > 1:  # that source's own rule
            held |= xs.source_holdout(Path(real), prefix, real_layout, cfg.get("patchalign24_csv"))
        elif cfg.get("split_method") == "patchalign24":
            held |= set(holdout_test_ids(find_table(Path(real))[1], prefix, cfg.get("patchalign24_csv")))
        elif not test_ids:
            raise ExportError(f"{folder} was not split by PatchAlign24's holdout; pass --test-ids (the build's "
                              "splits.csv) so real rows go to the right side")
    what = "those real photos (linked)" if real is not None else "the synthetics of the build's test split"
    return prefix, Holdout(f"the build's own held-out source photos ({len(held)}): {what}", held, chosen=False)


def _synthetic_rows(folder: Path, out: Path, train_splits, leaked: dict, placing: tuple[Holdout, Resolver],
                    image_size, with_test: bool, include_healthy: bool,
                    min_photos: int | None = None, sources=None) -> tuple[list[dict], dict]:
    from builder.published.audit import collect_shards
    from builder.published.export_sources import kept

    holdout, resolver = placing
    rows, excluded, seen = [], Counter(), set()
    for row, image in _shard_rows(folder, collect_shards(folder)):
        if row["sample_id"] in seen:
            continue  # one row listed by several configs
        seen.add(row["sample_id"])
        if row["disease"] == HEALTHY_DISEASE and not include_healthy:
            excluded["healthy"] += 1  # the trainers' task is malignant vs benign lesion
            continue
        if not kept(row["source_ids"], sources):
            excluded["other_sources"] += 1  # --sources: a lineage outside the chosen sources
            continue
        kind = KINDS[row["kind"]]
        paper = resolver.sources("paper", kind, row["disease"], row["source_ids"] or [], row_facts(kind, row))
        decides = set(paper if holdout.rule == "paper" else row["source_ids"] or [])
        split = _synthetic_side(row, train_splits, holdout, with_test, paper)
        if split is None:
            excluded["other_split" if not holdout.by_lineage else "test_lineage_with_real_test"] += 1
        elif min_photos is not None and _training_photos(row) < min_photos:
            excluded["few_training_photos"] += 1
        elif split == "train" and (row["sample_id"] in leaked or decides & holdout.held):
            excluded["leaked"] += 1
        else:
            hasher = f"{_sample_file_stem(row['sample_id'])}.png"
            (out / "images" / hasher).write_bytes(_resized(image, image_size) if image_size else image)
            rows.append({**_csv_row(row, hasher, split), "_decides": decides})
    return rows, dict(sorted(excluded.items()))


def _synthetic_side(row: dict, train_splits, holdout: Holdout, with_test: bool,
                    deciding: list[str] | None = None) -> str | None:
    """train, test, or None (left out): by the build's split, or by lineage (`deciding`: the sources the
    paper's rule names) under a chosen holdout or a rule that is not the build's."""
    if holdout.by_lineage:
        if row["split"] not in (*train_splits, "test"):
            return None
        side = holdout.side(row["source_ids"] or [], deciding)
        return side if side == "train" or with_test else None
    return "train" if row["split"] in train_splits else "test" if row["split"] == "test" and with_test else None


def _training_photos(row: dict) -> float:
    """A semantic row's disease's training-photo count (`params.training_photos`); other kinds: no limit."""
    if KINDS[row["kind"]] != "semantic":
        return float("inf")
    count = json.loads(row["params"] or "{}").get("training_photos")
    if count is None:
        raise ExportError(f"semantic row {row['sample_id']} has no params.training_photos (built before rows "
                          "carried it); rebuild the version, or export without --min-training-photos")
    return count


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
            "_sources": set(row["source_ids"] or []), "_type": row.get("fitzpatrick")}


def _add_codes(rows: list[dict], codes: dict[str, int]) -> None:
    """`low`, and the REWT / RESM weights of data_play_ddi.ipynb over every exported row."""
    weigh = cell_weights(rows)
    for r in rows:
        r["low"] = codes[r["disease"]]
        r["REWT_weights"], r["RESM_weights"] = weigh(r)


def cell_weights(rows) -> Callable[[dict], tuple[float, float]]:
    """One pass over `rows` (any iterable of dicts with `fitzpatrick` and `high`); returns
    row -> (REWT, RESM) weights of its fitzpatrick x high cell, for writers that stream rows."""
    cells, total = Counter(), 0
    for r in rows:
        cells[(r["fitzpatrick"], r["high"])] += 1
        total += 1
    types, conditions = Counter(), Counter()
    for (f, h), n in cells.items():
        types[f] += n
        conditions[h] += n

    def weigh(r: dict) -> tuple[float, float]:
        n = cells[(r["fitzpatrick"], r["high"])]
        return types[r["fitzpatrick"]] * conditions[r["high"]] / (n * total), 1 / n
    return weigh


def _check_no_test_lineage(train: list[dict], held: set[str]) -> None:
    bad = [r["hasher"] for r in train if r.get("_decides", r["_sources"]) & held]
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


def _prepare_out(out: Path, overwrite: bool, made=lambda name: name in EXPORT_FILES, images: bool = True) -> None:
    """An empty (or new) `out`, marked as an export. A folder is emptied only when it is an export's
    (its marker says so) and holds nothing else (`made(name)`: a name an export of this kind writes):
    `--overwrite` replaces a finished export, and an export that was interrupted (its marker still says
    `running`) is redone without it."""
    marker = out / EXPORT_MARKER
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"--out {out} is a link or a file, not a folder; choose a new folder")
    if out.exists() and any(out.iterdir()):
        state = _marker_state(marker)
        foreign = sorted(p.name for p in out.iterdir() if not made(p.name) and p.name != EXPORT_MARKER)
        if state is None or foreign or (out / "images").is_symlink():
            raise ExportError(f"--out {out} holds files that no export made ({(foreign or ['no export marker'])[:3]}); "
                              "an export never deletes them: choose a new or empty folder")
        if state != "running" and not overwrite:
            raise ExportError(f"{out} holds a finished export; pass --overwrite to replace it, or choose another --out")
        for p in sorted(out.iterdir()):  # only what an export writes; links are removed, never followed
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    _write_marker(marker, "running")
    if images:
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


def _write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = CSV_COLUMNS) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)


def _write_codes(path: Path, codes: dict[str, int]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["low", "disease"])
        w.writerows((i, csv_cell(name)) for name, i in sorted(codes.items(), key=lambda kv: kv[1]))
