"""What a version folder serves, read safely: its files (links never followed into loops), the data files
`datasets` would load from it (its own resolution, configs or by-name discovery), and shards read a row
group at a time under size limits, with ClassLabel indexes checked.

A version folder is untrusted input (a download, a folder someone handed over): nothing here follows a
link to a folder, decompresses more than the limits below, or lets a bad value through as a traceback.
Every problem is an `IntegrityProblem` (problem, path, detail) that the audit reports.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from builder.core.errors import IntegrityProblem

# The toolkit writes row groups of <= 100 rows and ~32 MB (datasets caps them at 100 MB); a hostile
# file may declare gigabytes that a few KB of zstd expand to. Anything past these is refused unread.
MAX_ROW_GROUP_BYTES = 256 * 2**20
MAX_ROW_GROUP_ROWS = 10_000
MAX_FILE_BYTES_UNCOMPRESSED = 64 * 2**30
SKIPPED_DIRS = (".cache", ".git")  # a Hub download's bookkeeping, at the top level only


def walk_files(folder: Path) -> tuple[list[str], list[IntegrityProblem]]:
    """Every file under `folder`, relative and sorted, never descending into a linked folder (a link to
    `..` would loop); links to folders and dangling links are problems. Links to files are kept (a Hub
    snapshot links each file to its blob)."""
    files, problems = [], []
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel_root = Path(root).relative_to(folder)
        keep = []
        for d in sorted(dirs):
            if rel_root == Path(".") and d in SKIPPED_DIRS:
                continue
            if os.path.islink(os.path.join(root, d)):
                problems.append(IntegrityProblem("linked_folder", (rel_root / d).as_posix(),
                                                 f"a link to a folder ({os.readlink(os.path.join(root, d))}); "
                                                 "a version holds its own files: remove the link"))
                continue
            keep.append(d)
        dirs[:] = keep
        for n in names:
            rel = (rel_root / n).as_posix()
            if os.path.islink(os.path.join(root, n)) and not os.path.isfile(os.path.join(root, n)):
                problems.append(IntegrityProblem("broken_link", rel, "a link to nothing (or to no file)"))
                continue
            files.append(rel)
    return sorted(files), problems


def served_files(folder: Path) -> dict[str, str]:
    """rel path -> split of every data file `load_dataset(folder)` would read, for every config, resolved
    by `datasets` itself: the card's `configs` (`data_files`, `data_dir`) or, without them, its by-name
    discovery (`data/train.parquet`, `test-*.csv`, ...). Raises IntegrityProblem when `datasets` cannot
    resolve the folder (then it would not load either)."""
    from datasets.data_files import DataFilesPatternsDict
    from datasets.load import LocalDatasetModuleFactory

    base = Path(folder).resolve()
    try:
        module = LocalDatasetModuleFactory(base.as_posix()).get_module()
        out: dict[str, str] = {}
        for config in module.builder_configs_parameters.builder_configs:
            files = config.data_files
            if isinstance(files, DataFilesPatternsDict):
                files = files.resolve(base_path=base.as_posix())
            for split, paths in (files or {}).items():
                for p in paths:
                    out[_relative(p, base)] = str(split)
    except IntegrityProblem:
        raise
    except Exception as e:  # noqa: BLE001 (datasets raises many types for a folder it cannot read)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise IntegrityProblem("unresolvable_data_files", "README.md",
                               f"`datasets` cannot resolve the data files ({type(e).__name__}: {first})") from None
    return dict(sorted(out.items()))


def _relative(path: str, base: Path) -> str:
    p = Path(str(path).removeprefix("file://"))
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        raise IntegrityProblem("path_outside_folder", str(path), "a data file outside the version folder is "
                               "served (the card's data_files reach out of it); fix the card") from None


def open_shard(folder: Path, rel: str):
    """A pyarrow ParquetFile whose footer declares row groups within the limits; else IntegrityProblem."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(folder / rel)
        meta = pf.metadata
    except Exception as e:  # noqa: BLE001 (a truncated or overwritten file: many pyarrow types)
        raise IntegrityProblem("unreadable_parquet", rel, str(e)[:200]) from None
    total = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        size = max(rg.total_byte_size, sum(rg.column(c).total_uncompressed_size for c in range(rg.num_columns)))
        total += size
        if size > MAX_ROW_GROUP_BYTES or rg.num_rows > MAX_ROW_GROUP_ROWS or total > MAX_FILE_BYTES_UNCOMPRESSED:
            raise IntegrityProblem("oversized_row_group", rel,
                                   f"row group {g} declares {rg.num_rows} rows, {size / 2**20:.0f} MiB "
                                   f"decompressed (limits {MAX_ROW_GROUP_ROWS} rows, "
                                   f"{MAX_ROW_GROUP_BYTES // 2**20} MiB); not read")
    return pf


def read_shard_rows(folder: Path, rel: str, columns: list[str]) -> Iterator[tuple[dict, bytes]]:
    """(row without `image`, PNG bytes) a row group at a time, `disease` decoded to its name; class
    indexes outside their label lists, and undecodable pages, raise IntegrityProblem naming the file."""
    from builder.core.schema import KINDS, SKIN_TONES, shard_disease_names

    pf = open_shard(folder, rel)
    try:
        names = shard_disease_names(pf.schema_arrow)
    except (ValueError, KeyError, TypeError) as e:
        raise IntegrityProblem("schema_mismatch", rel, str(e)[:200]) from None
    labels = {"kind": KINDS, "skin_tone": SKIN_TONES, "disease": names}
    for g in range(pf.num_row_groups):
        try:
            table = pf.read_row_group(g, columns=list(columns) + ["image"])
            images = table.column("image").combine_chunks().field("bytes").to_pylist()
            rows = table.drop_columns(["image"]).to_pylist()
        except Exception as e:  # noqa: BLE001 (a flipped bit: a decompression or thrift error)
            raise IntegrityProblem("unreadable_parquet", rel, f"row group {g}: {str(e)[:200]}") from None
        for row, image in zip(rows, images):
            for col, names_ in labels.items():
                if col in row and not (isinstance(row[col], int) and 0 <= row[col] < len(names_)):
                    raise IntegrityProblem("class_index_out_of_range", rel,
                                           f"row {row.get('sample_id')!r}: {col} = {row[col]!r}, expected "
                                           f"0-{len(names_) - 1}")
            if "disease" in row:
                row["disease"] = names[row["disease"]]
            yield row, image


def read_manifest_or_report(folder: Path, report) -> dict | None:
    """manifest.json of an audited (untrusted) folder, or None with an `unreadable_manifest` problem."""
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes().decode("utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError(f"a JSON {type(manifest).__name__}, not an object")
        return manifest
    except ValueError as e:  # bad UTF-8 or JSON
        if report is not None:
            report.integrity.append({"problem": "unreadable_manifest", "path": "manifest.json", "detail": str(e)[:200]})
        return None


def read_card_yaml(folder: Path, report=None) -> dict:
    """README.md front matter (empty when there is none, or, with a problem in `report`, unreadable)."""
    import yaml

    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    readme = folder / "README.md"
    try:
        text = readme.read_bytes().decode("utf-8") if readme.is_file() else ""
        block = REGEX_YAML_BLOCK.search(text)  # the Hub's own fences: a `---` inside a value is no fence
        meta = yaml.safe_load(block.group(2)) if block else {}
        return meta if isinstance(meta, dict) else {}
    except (ValueError, IndexError, yaml.YAMLError) as e:
        if report is not None:
            report.integrity.append({"problem": "unreadable_card", "path": "README.md", "detail": str(e)[:200]})
        return {}
