"""Source metadata: read DDI and Fitzpatrick17k tables strictly, turning bad rows into rejections.

Whole-file problems (no table, missing columns) raise `SourceError`; a bad row becomes a
`Rejection` naming the file, line, column, value and the fix, and the run goes on. Every row
ends up in `SourceTable.rows` or `SourceTable.rejections` (`n_in == kept + rejected`).

Subsets (`source.subset`): `all` keeps every row; `expert_verified` keeps the Fitzpatrick17k rows
whose `qc` column (`fitz17k_qc` in the masked-photo table) holds a dermatologist's verdict that the
photo shows its label: `1 Diagnostic` or `2 Characteristic` (the other verdicts are `3 Wrongly
labelled`, `4 Other`, `5 Potentially`; most rows were never reviewed and have none). The published
table has 380 such rows (376 with a known Fitzpatrick type). Every other row is rejected
`not_in_subset`, counted like any rejection, before its files are looked at.
"""
from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

from builder.core.errors import ConfigError, SourceError
from builder.core.text import read_text_strict
from builder.core.schema import DDI_TONE_TO_NAME, DISEASE_MAP_FILE, Rejection, fitzpatrick_to_tone

STAGE = "ingest"
DISEASE_MAP = DISEASE_MAP_FILE
DDI_TABLE, FITZ_TABLES = "ddi_metadata.csv", ("metadata.csv", "fitzpatrick17k.csv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
SUBSETS = {"all": None, "expert_verified": ("1 Diagnostic", "2 Characteristic")}  # qc values kept
QC_COLUMNS = ("qc", "fitz17k_qc")  # the published table's name, the masked-photo table's


@dataclasses.dataclass(frozen=True)
class SourceRow:
    """One valid metadata row; files are resolved inside the source root but not yet read."""

    source_id: str
    line: int  # 1-based line in the table (header is line 1): what error messages cite
    image: Path
    mask: Path | None  # sDDI .npy or binary lesion PNG
    nonskin: Path | None  # binary non-skin PNG (Fitzpatrick17k masks)
    skin_tone: str
    fitzpatrick: int | None
    malignant: bool
    disease: str
    disease_raw: str
    patient_id: str | None


@dataclasses.dataclass
class SourceTable:
    layout: str  # "ddi" | "fitz17k"
    table: Path
    n_in: int
    rows: list[SourceRow]
    rejections: list[Rejection]
    name: str = ""  # the id prefix: the layout unless overridden (the embedded demo: "demo")
    root: Path = Path(".")  # the source folder (resolved)
    id_stems: tuple[str, ...] = ()  # every row's image stem in file order, whole table (a table-decided holdout)
    subset: str = "all"  # the rows kept (`SUBSETS`); the others are rejected `not_in_subset`
    mask_dir: Path | None = None  # the masks folder read (resolved)
    parts: tuple["SourceTable", ...] = ()  # several sources in one build (`merge_tables`): each one's own table


def load_disease_map(path: str | Path | None = None) -> dict[str, str]:
    """The raw -> joined disease map (`ddi_disease,joined_disease`; 78 raw DDI names -> 65)."""
    path = Path(path or DISEASE_MAP)
    df = read_csv_strings(path)
    missing = {"ddi_disease", "joined_disease"} - set(df.columns)
    if missing:
        raise SourceError(f"{path}: disease map lacks columns {sorted(missing)}; expected a CSV with "
                          "header 'ddi_disease,joined_disease'")
    return dict(zip(df["ddi_disease"].to_list(), df["joined_disease"].to_list()))


def read_csv_strings(path: Path, limit: int | None = None):
    """A CSV as a string-only polars frame; non-UTF-8 bytes (`read_text_strict`) or a malformed file
    raise a SourceError naming the file."""
    import polars as pl

    data = read_text_strict(path).encode()
    try:  # strings only: every value is validated by us instead of by type inference
        return pl.read_csv(io.BytesIO(data), infer_schema=False, n_rows=limit)
    except pl.exceptions.PolarsError as e:
        raise SourceError(f"{path}: not a readable CSV table ({str(e).splitlines()[0]}); "
                          "fix the file (one header row, comma-separated, the same columns on every line)") from e


def find_table(source: Path) -> tuple[str, Path]:
    """Which layout a source folder has, and its metadata table."""
    if (source / DDI_TABLE).is_file():
        return "ddi", source / DDI_TABLE
    for name in FITZ_TABLES:
        if (source / name).is_file():
            return "fitz17k", source / name
    raise SourceError(f"{source}: no metadata table found; expected {DDI_TABLE} (DDI layout) or one of "
                      f"{', '.join(FITZ_TABLES)} (Fitzpatrick17k layout) in that folder")


def read_source_table(source: str | Path, masks: str | Path | None = None, *,
                      source_name: str | None = None, limit: int | None = None,
                      disease_map: dict[str, str] | None = None, subset: str = "all") -> SourceTable:
    """Validate a source folder's metadata and locate its images and masks.

    Ids are `<source_name>:<stem>` (default name: the layout, `ddi` or `fitz17k`). Masks default to
    `<source>/masks`. `limit` keeps the first rows only (quick runs); orphan files are then not
    checked, since most would be orphans of the rows left out. `subset`: a key of `SUBSETS`.
    """
    check_subset(subset)
    source = Path(source).resolve()
    if not source.is_dir():
        raise SourceError(f"source folder {source} does not exist; pass the folder holding "
                          f"{DDI_TABLE} (DDI) or metadata.csv (Fitzpatrick17k)")
    layout, table = find_table(source)
    name = check_source_name(source_name) if source_name else layout
    if _inside(source, table.name) is None:
        raise SourceError(f"{table} resolves to {table.resolve()}, outside the source folder {source}; "
                          "copy the table into the folder (symlinks must stay inside it)")
    full = read_csv_strings(table)  # read once: the holdout is decided on the whole table, --limit or not
    df = (full if limit is None else full.head(limit)).with_row_index("line", offset=2)
    masks_given = masks is not None
    masks = Path(masks).resolve() if masks_given else source / "masks"
    dmap, mask_root = disease_map if disease_map is not None else load_disease_map(), masks if masks_given else source
    if layout == "ddi":
        if subset != "all":
            raise ConfigError(f"source.subset={subset!r} selects Fitzpatrick17k rows by their qc column; {table} is "
                              "a DDI table, which has none: use source.subset: all")
        rows, rejections = _check_ddi(df, table, source, masks, name, dmap, mask_root)
    else:
        rows, rejections = _check_fitz(df, table, source, masks, name, dmap, mask_root, SUBSETS[subset])
    rejections += _duplicate_ids(rows, table)
    first = _first_lines(rows)  # one pass: a table naming one photo on every line stays linear
    rows = [r for r in rows if r.line == first[r.source_id]]
    rows.sort(key=lambda r: r.source_id)
    orphans = _orphan_files(layout, df, table, source, masks) if limit is None else []
    return SourceTable(layout, table, df.height + len(orphans), rows,
                       sorted(rejections + orphans, key=_rej_key), name=name, root=source,
                       id_stems=table_stems(full), subset=subset, mask_dir=masks)


def merge_tables(tables: list[SourceTable]) -> SourceTable:
    """Several sources read for one build, as one table: every source's rows and rejections (ids keep
    their source's prefix, so none can collide), its inputs counted once. Each source stays in `parts`
    with its own table, layout, subset and masks folder: holdouts and fingerprints are decided per source.
    Two sources with one name are refused (their ids would merge): name them apart (`--source-name`)."""
    names = [t.name for t in tables]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SourceError(f"two sources are named {twice[0]!r} (ids {twice[0]}:<stem> would name photos of both); "
                          "give each --source its own --source-name (e.g. ddi and ddi-clinic2)")
    rows = sorted((r for t in tables for r in t.rows), key=lambda r: r.source_id)
    rejections = sorted((r for t in tables for r in t.rejections), key=_rej_key)
    return SourceTable("+".join(t.layout for t in tables), tables[0].table, sum(t.n_in for t in tables), rows,
                       rejections, name="+".join(names), root=tables[0].root, parts=tuple(tables),
                       subset="+".join(t.subset for t in tables))


def check_subset(subset: str) -> None:
    """`source.subset` names one of `SUBSETS` (checked before any table is read)."""
    if subset not in SUBSETS:
        raise ConfigError(f"source.subset={subset!r} is not one of {', '.join(SUBSETS)}; use all (every row) or "
                          "expert_verified (Fitzpatrick17k rows whose qc is 1 Diagnostic or 2 Characteristic)")


def table_stems(df) -> tuple[str, ...]:
    """The image stem each row of a DDI or Fitzpatrick17k table names (`DDI_file` / `md5hash`), in file
    order; PatchAlign24's own CSV names them in `hasher`. Empty when the table has none of these."""
    column = next((c for c in ("hasher", "DDI_file", "md5hash") if c in df.columns), None)
    if column is None:
        return ()
    return tuple(Path((v or "").strip()).stem if column != "md5hash" else (v or "").strip()
                 for v in df[column].to_list())


def check_source_name(name: str) -> str:
    """A source name is the prefix of every id (`<name>:<stem>`): lower-case letters, digits, `_`, `-`."""
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name or ""):
        raise SourceError(f"source name {name!r} cannot prefix ids; use lower-case letters, digits, '_' or '-' "
                          "(e.g. ddi, fitz17k, ddi-clinic2), or leave it out to name the source by its layout")
    return name


def _orphan_files(layout: str, df, table: Path, source: Path, masks: Path | None) -> list[Rejection]:
    """Masks and images that no table row names: inputs too, so they are rejected, not ignored."""
    if layout == "ddi":
        named = {Path(f or "").stem for f in df["DDI_file"].to_list()}
        mask_files = sorted(masks.glob("*.npy"))
        stem = lambda p: p.stem  # noqa: E731
    else:
        named = {(m or "").strip() for m in df["md5hash"].to_list()}
        mask_files = sorted(masks.glob("*_lesions.png"))
        stem = lambda p: p.name[: -len("_lesions.png")]  # noqa: E731
    image_dirs = [source, source / "images"] if layout == "ddi" else [source / "images"]
    out = [Rejection(STAGE, f"mask:{p.name}", "mask_without_image",
                     f"{p}: no row of {table.name} names image {stem(p)!r}; add the row (and image) "
                     "or remove the mask", str(p)) for p in mask_files if stem(p) not in named]
    out += [Rejection(STAGE, f"image:{p.name}", "image_without_metadata",
                      f"{p}: no row of {table.name} names this image; add its row or remove the file",
                      str(p)) for d in image_dirs for p in sorted(d.glob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem not in named]
    return out


def _rej_key(r: Rejection) -> tuple:
    return (r.item_id, r.reason, r.detail)


def _first_lines(rows: list[SourceRow]) -> dict[str, int]:
    """The first line of each id."""
    first: dict[str, int] = {}
    for r in rows:
        first[r.source_id] = min(r.line, first.get(r.source_id, r.line))
    return first


def _require(df, table: Path, needed: list[str], hint: str = "") -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise SourceError(f"{table}: missing columns {missing} (found {[c for c in df.columns if c != 'line']}); "
                          f"expected {needed}{hint}")


def _reject(table: Path, line: int, item: str, reason: str, column: str, value, why: str, fix: str) -> Rejection:
    return Rejection(STAGE, item, reason,
                     f"{table.name} line {line}, column {column}: value {value!r} {why}; {fix}", str(table))


def _check_ddi(df, table: Path, source: Path, masks: Path, name: str, dmap: dict[str, str], mask_root: Path):
    _require(df, table, ["DDI_ID", "DDI_file", "skin_tone", "disease"])
    mal_col = "malignancy(malig=1)" if "malignancy(malig=1)" in df.columns and "malignant" not in df.columns \
        else "malignant"
    _require(df, table, [mal_col], " (or the older 'malignancy(malig=1)' with 1/0)")
    patient_col = next((c for c in ("patient_id", "patient") if c in df.columns), None)
    rows, rej, seen_id = [], [], {}
    for d in df.iter_rows(named=True):
        line, raw_id = d["line"], (d["DDI_ID"] or "").strip()
        stem = Path((d["DDI_file"] or "").strip()).stem
        item = f"{name}:{stem}" if stem else f"{name}:line{line}"
        problem = _ddi_problem(d, table, source, item, mal_col, dmap)
        if problem is None and seen_id.setdefault(raw_id, line) != line:
            problem = _reject(table, line, item, "duplicate_id", "DDI_ID", raw_id,
                              f"repeats line {seen_id[raw_id]}", "give each photo its own DDI_ID")
        if problem:
            rej.append(problem)
            continue
        image = _inside(source, _ddi_image(source, d["DDI_file"]))
        mask, problem = _mask_file(masks, mask_root, f"{image.stem}.npy", table, line, item, "DDI_file",
                                   d["DDI_file"])
        if problem:
            rej.append(problem)
            continue
        rows.append(SourceRow(item, line, image, mask, None,
                              DDI_TONE_TO_NAME[int(d["skin_tone"])], None,
                              d[mal_col].strip().lower() in _TRUE, dmap[d["disease"].strip()],
                              d["disease"].strip(), _str_or_none(d.get(patient_col))))
    return rows, rej


def _ddi_problem(d: dict, table: Path, source: Path, item: str, mal_col: str, dmap) -> Rejection | None:
    line = d["line"]
    R = lambda reason, col, why, fix: _reject(table, line, item, reason, col, d.get(col), why, fix)  # noqa: E731
    for col in ("DDI_ID", "DDI_file", "skin_tone", mal_col, "disease"):
        if not (d.get(col) or "").strip():
            return R("missing_value", col, "is empty", "fill it in or remove the row")
    if not d["DDI_ID"].strip().isdigit():
        return R("bad_id", "DDI_ID", "is not a positive integer", "use the DDI number, e.g. 1 for 000001.png")
    if d["skin_tone"].strip() not in {str(k) for k in DDI_TONE_TO_NAME}:
        return R("unknown_skin_tone", "skin_tone", "is not a DDI skin tone (12, 34 or 56)",
                 "fix the value or remove the row")
    if d[mal_col].strip().lower() not in _TRUE | _FALSE:
        return R("bad_malignancy", mal_col, "is not True/False or 1/0", "fix the value")
    if d["disease"].strip() not in dmap:
        return R("unmapped_disease", "disease", "is not in the raw -> joined disease map",
                 f"add a row '{d['disease'].strip()},<joined name>' to the map ({DISEASE_MAP.name})")
    return _file_problem(R, source, _ddi_image(source, d["DDI_file"]), "DDI_file")


def _ddi_image(source: Path, name: str) -> str:
    """DDI photos sit beside the table or in `images/` (the demo source's layout)."""
    name = name.strip()
    return name if (source / name).is_file() or not (source / "images" / name).is_file() else f"images/{name}"


def _file_problem(R, source: Path, rel: str, col: str) -> Rejection | None:
    path = _inside(source, rel)
    if path is None:
        return R("path_escapes_root", col, f"resolves to {(source / rel.strip()).resolve()}, outside the "
                 f"source folder {source}", "copy the file into the source folder (symlinks must stay inside it)")
    if not path.is_file():
        return R("missing_image", col, f"names no file ({path} does not exist)",
                 "add the image or remove the row")
    return None


def _inside(root: Path, rel: str) -> Path | None:
    """`rel` under `root` (resolved), or None when it escapes: an absolute path, `..`, or a symlink (of
    the file or of a folder above it) resolving outside. The path keeps its own name (a mask is found
    by the image's stem, not its link target's)."""
    path = Path(os.path.normpath(root / rel.strip()))
    return path if path.is_relative_to(root) and path.resolve().is_relative_to(root) else None


def _mask_file(masks: Path, root: Path, name: str, table: Path, line: int, item: str, col: str, value):
    """(mask path or None, rejection or None): a mask whose file resolves outside `root` rejects its row."""
    mask = masks / name
    if not mask.is_file():
        return None, None
    if _inside(root, str(mask.relative_to(root))) is None:
        return None, _reject(table, line, item, "path_escapes_root", col, value,
                             f"has mask {mask}, which resolves to {mask.resolve()}, outside {root}",
                             "copy the mask into the masks folder (symlinks must stay inside it)")
    return mask, None


def _str_or_none(v) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _check_fitz(df, table: Path, source: Path, masks: Path, name: str, dmap: dict[str, str], mask_root: Path,
                keep_qc: tuple[str, ...] | None = None):
    _require(df, table, ["md5hash", "fitzpatrick_scale", "label", "three_partition_label"])
    qc_col = _qc_column(df, table) if keep_qc else None
    rows, rej = [], []
    for d in df.iter_rows(named=True):
        line, md5 = d["line"], (d["md5hash"] or "").strip()
        item = f"{name}:{md5}" if md5 else f"{name}:line{line}"
        problem = _subset_problem(d, table, item, qc_col, keep_qc) if keep_qc else None
        problem = problem or _fitz_problem(d, table, source, item)
        if problem:
            rej.append(problem)
            continue
        image = _inside(source, _fitz_image(source, d))
        fitz = int(d["fitzpatrick_scale"])
        lesion, p1 = _mask_file(masks, mask_root, f"{md5}_lesions.png", table, line, item, "md5hash", md5)
        if lesion is None and p1 is None:  # an sDDI-form map (generate masks)
            lesion, p1 = _mask_file(masks, mask_root, f"{md5}.npy", table, line, item, "md5hash", md5)
        nonskin, p2 = _mask_file(masks, mask_root, f"{md5}_nonskin.png", table, line, item, "md5hash", md5)
        if p1 or p2:
            rej.append(p1 or p2)
            continue
        label = d["label"].strip()
        rows.append(SourceRow(item, line, image, lesion, nonskin, fitzpatrick_to_tone(fitz), fitz,
                              d["three_partition_label"].strip() == "malignant", dmap.get(label, label),
                              label, _str_or_none(d.get("patient_id"))))
    return rows, rej


def _qc_column(df, table: Path) -> str:
    col = next((c for c in QC_COLUMNS if c in df.columns), None)
    if col is None:
        raise SourceError(f"{table}: source.subset=expert_verified needs the dermatologists' verdicts, column "
                          f"{' or '.join(QC_COLUMNS)} (Fitzpatrick17k's fitzpatrick17k.csv has qc); add the column "
                          "or use source.subset: all")
    return col


def _subset_problem(d: dict, table: Path, item: str, col: str, keep: tuple[str, ...]) -> Rejection | None:
    value = (d.get(col) or "").strip()
    if value in keep:
        return None
    return _reject(table, d["line"], item, "not_in_subset", col, value,
                   f"is not an expert verdict that the photo shows its label ({' or '.join(keep)})",
                   "source.subset=expert_verified leaves the row out (source.subset: all keeps it)")


def _fitz_image(source: Path, d: dict) -> str:
    if (d.get("image_file") or "").strip():
        return d["image_file"]
    md5 = d["md5hash"].strip()
    for suffix in IMAGE_SUFFIXES:  # the published CSV names no file: images/<md5>.<ext>
        if (source / "images" / f"{md5}{suffix}").is_file():
            return f"images/{md5}{suffix}"
    return f"images/{md5}.jpg"


def _fitz_problem(d: dict, table: Path, source: Path, item: str) -> Rejection | None:
    line = d["line"]
    R = lambda reason, col, why, fix: _reject(table, line, item, reason, col, d.get(col), why, fix)  # noqa: E731
    for col in ("md5hash", "fitzpatrick_scale", "label", "three_partition_label"):
        if not (d.get(col) or "").strip():
            return R("missing_value", col, "is empty", "fill it in or remove the row")
    if d["fitzpatrick_scale"].strip() not in {"1", "2", "3", "4", "5", "6"}:
        return R("unknown_skin_tone", "fitzpatrick_scale", "is not a Fitzpatrick type 1-6 (-1 = unknown)",
                 "label the skin type or remove the row")
    if d["three_partition_label"].strip() not in ("malignant", "benign", "non-neoplastic"):
        return R("bad_malignancy", "three_partition_label", "is not malignant/benign/non-neoplastic",
                 "fix the value")
    # The published table names no file: then the md5hash is what points at images/<md5>.<ext>.
    col = "image_file" if (d.get("image_file") or "").strip() else "md5hash"
    return _file_problem(R, source, _fitz_image(source, d), col)


def _duplicate_ids(rows: list[SourceRow], table: Path) -> list[Rejection]:
    """Later rows repeating an id are rejected; the first stays (its line is named)."""
    first: dict[str, int] = {}
    out = []
    for r in sorted(rows, key=lambda r: r.line):
        if r.source_id in first:
            out.append(Rejection(STAGE, r.source_id, "duplicate_id",
                                 f"{table.name} line {r.line}: id {r.source_id!r} repeats line "
                                 f"{first[r.source_id]}; remove one of the rows", str(table)))
        else:
            first[r.source_id] = r.line
    return out
