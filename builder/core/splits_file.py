"""The split table (`splits.csv`) and test-id files: the one reader and writer of each, and the test-id check.

`splits.csv` has the columns `source_id,split`, one row per real source image, sorted by id.
A test-id file is one source id per line (`#` starts a comment), or a CSV with a `source_id`
column; when it also has a `split` column (a build's `splits.csv`), only its `test` rows count.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Iterable

from builder.core.errors import ConfigError
from builder.core.schema import SPLITS
from builder.core.text import read_text_strict

HEADER = ("source_id", "split")
SHOWN = 3  # ids named per side when a file matches nothing


def write_splits(path: str | os.PathLike, split_of: dict[str, str]) -> Path:
    """Write `splits.csv` (sorted by source id; `\\n` line ends, so the bytes are the same everywhere)."""
    bad = sorted({s for s in split_of.values()} - set(SPLITS))
    if bad:
        raise ValueError(f"split values {bad} are not one of {list(SPLITS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(HEADER)
        wr.writerows(sorted(split_of.items()))
    return path


def read_splits(path: str | os.PathLike) -> dict[str, str]:
    """`splits.csv` -> {source_id: split}, strictly checked (columns, split names, repeated ids)."""
    path = Path(path)
    rows = _csv_rows(path, "split table", "pass the splits.csv a build or `curate` wrote")
    if not rows or not set(HEADER) <= set(rows[0]):
        raise ConfigError(f"split table {path}: columns are {list(rows[0]) if rows else 'none'}, expected "
                          f"{','.join(HEADER)} (the splits.csv a build or `curate` writes)")
    out: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        sid, split = (row.get("source_id") or "").strip(), (row.get("split") or "").strip()
        if split not in SPLITS:
            raise ConfigError(f"split table {path} line {line}: {sid} has split {split!r}; "
                              f"expected one of {list(SPLITS)}")
        if sid in out:
            raise ConfigError(f"split table {path} line {line}: {sid} is listed twice; keep one row per source id")
        out[sid] = split
    return out


def read_test_ids(path: str | os.PathLike) -> set[str]:
    """Test source ids from a test-id file (see the module docstring); an empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"test-ids file {path} does not exist; give a file with one source id per line "
                          "(e.g. ddi:000001) or a build's splits.csv")
    lines = [ln.split("#", 1)[0].strip() for ln in read_text_strict(path).splitlines()]
    lines = [ln for ln in lines if ln]
    if lines and lines[0].split(",")[0].strip() == "source_id":
        rows = _csv_rows(path, "test-ids file", "give one source id per line")
        has_split = "split" in rows[0]
        ids = {r["source_id"].strip() for r in rows[1:] if r.get("source_id", "").strip()
               and (not has_split or (r.get("split") or "").strip() == "test")}
    else:
        ids = set(lines)
    if not ids:
        raise ConfigError(f"test-ids file {path} lists no test ids; expected one source id (e.g. ddi:000001) "
                          "per line, or a splits.csv with test rows")
    return ids


def write_test_ids(path: str | os.PathLike, ids: Iterable[str]) -> Path:
    """Write a test-id file: one source id per line, sorted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\n" for s in sorted(set(ids))))
    return path


def check_test_ids(test_ids: Iterable[str], sources: Iterable[str], *, where: str, every: bool = False,
                   hint: str = "") -> None:
    """Refuse test ids that match no source (or, with `every`, any id that is not a source), naming a
    few ids from each side: a file for another source (e.g. `ddi:` ids for a `demo:` build) would
    otherwise hold out nothing and pass silently."""
    test_ids, sources = set(test_ids), set(sources)
    unknown = sorted(test_ids - sources)
    if not unknown or (not every and len(unknown) < len(test_ids)):
        return
    what = "none of" if len(unknown) == len(test_ids) else f"{len(unknown)} of"
    raise ConfigError(f"{what} the {len(test_ids)} test ids ({_few(unknown)}) {'is' if what == 'none of' else 'are not'} "
                      f"among the {len(sources)} source ids of {where} ({_few(sorted(sources))})"
                      f"{'; ' + hint if hint else ''}")


def _few(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (", ..." if len(ids) > SHOWN else "") if ids else "none"


def _csv_rows(path: Path, what: str, fix: str) -> list[dict]:
    """The header (as a dict of itself) and the rows of a CSV file; `#` comment lines dropped."""
    try:
        text = read_text_strict(path)
    except OSError as e:
        raise ConfigError(f"{what} {path}: cannot read ({e}); {fix}") from e
    body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    reader = csv.DictReader(io.StringIO(body))
    fields = [f.strip() for f in reader.fieldnames or []]
    reader.fieldnames = fields
    return [dict(zip(fields, fields))] + list(reader)
