"""Parquet shards in the Hub layout `data/<config>/<split>-XXXXX-of-YYYYY.parquet`, streamed, PNG bytes as-is.

Memory stays bounded by one row group: records carry only paths, image bytes are read from the stage
store a row group at a time and written straight out (never decoded or re-encoded). Shards are cut
by image bytes to about `publish.shard_mb` MB; row groups hold at most ROW_GROUP_ROWS rows and about
ROW_GROUP_MB MB, so a streaming reader (`load_dataset(..., streaming=True)`, the dataset viewer)
fetches a few tens of MB at a time (datasets caps row groups at 100 MB: `config.MAX_ROW_GROUP_SIZE`).
The image and mask columns are stored uncompressed and PLAIN-encoded (PNG is already compressed; zstd
would only burn CPU), the small lineage columns with zstd. As `datasets` writes Parquet for the Hub
(`datasets.arrow_writer.ParquetWriter`): content-defined chunking of data pages (CDC_OPTIONS, also recorded
in the file's key-value metadata `content_defined_chunking`), so a rebuild that changes a few rows
re-uploads only the pages that changed on Hub (Xet) storage, and the page index, so readers skip pages.
Same records and bytes -> byte-identical files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from builder.core.schema import PUBLISHED_COLUMNS, SPLITS, Record, arrow_schema, version_disease_names
from builder.core.store import StageStore

ROW_GROUP_ROWS = 100
ROW_GROUP_MB = 32.0
PNG_BYTES = [f"{c.name}.bytes" for c in PUBLISHED_COLUMNS if c.dtype == "image"]  # image.bytes, mask.bytes
# Every leaf zstd but the PNG bytes (already compressed: zstd would only burn CPU).
COMPRESSION = {**{p: "zstd" for c in PUBLISHED_COLUMNS for p in c.leaf_paths()}, **{p: "NONE" for p in PNG_BYTES}}
DICTIONARY = [p for c in PUBLISHED_COLUMNS for p in c.leaf_paths(dictionary_only=True)]
ENCODING = {p: "PLAIN" for p in PNG_BYTES}  # every PNG is unique: a dictionary would only cost hashing and RAM
# `datasets.config.DEFAULT_CDC_OPTIONS` (datasets 5.2), written down here so that the bytes do not move with it.
CDC_OPTIONS = {"min_chunk_size": 256 * 1024, "max_chunk_size": 1024 * 1024, "norm_level": 0}


def _size(r: Record, store_of: dict[str, StageStore]) -> int:
    return os.path.getsize(store_of[r.kind].root / (r.image_path or f"images/{r.sample_id}.png"))


def cut_by_size(records: list[Record], sizes: list[int], limit_bytes: float,
                max_rows: int | None = None) -> list[list[Record]]:
    """Consecutive groups of about `limit_bytes` (and at most `max_rows`), each with >= 1 row."""
    groups: list[list[Record]] = [[]]
    size = 0
    for r, n in zip(records, sizes):
        full = size + n > limit_bytes or (max_rows is not None and len(groups[-1]) >= max_rows)
        if groups[-1] and full:
            groups.append([])
            size = 0
        groups[-1].append(r)
        size += n
    return [g for g in groups if g]


def plan_shards(records: list[Record], store_of: dict[str, StageStore], shard_mb: float) -> list[list[Record]]:
    """Cut sorted records into consecutive groups of about `shard_mb` MB of image bytes (>= 1 row each)."""
    if shard_mb <= 0:
        raise ValueError(f"publish.shard_mb={shard_mb!r} must be > 0 (default 500)")
    rows = sorted(records, key=lambda r: r.sample_id)
    return cut_by_size(rows, [_size(r, store_of) for r in rows], shard_mb * 1e6)


def write_shards(records: list[Record], store_of: dict[str, StageStore], out_dir: Path, config: str,
                 shard_mb: float, diseases: tuple[str, ...] | None = None) -> list[dict]:
    """Write one config's shards for every split; returns one file entry per shard (path, rows, bytes, sha256).

    `diseases`: the version's `disease` ClassLabel names (`schema.version_disease_names` over every record of
    the version, so all configs share them); default: those of `records`."""
    from builder.build.manifest import file_entry

    diseases = diseases if diseases is not None else version_disease_names(records)
    entries = []
    for split in SPLITS:
        rows = [r for r in records if r.split == split]
        if not rows:
            continue
        groups = plan_shards(rows, store_of, shard_mb)
        for i, group in enumerate(groups):
            rel = f"data/{config}/{split}-{i:05d}-of-{len(groups):05d}.parquet"
            _write_one(group, store_of, out_dir / rel, diseases)
            entries.append(file_entry(out_dir, rel, config=config, split=split, rows=len(group)))
    return entries


def _write_one(group: list[Record], store_of: dict[str, StageStore], path: Path, diseases: tuple[str, ...]) -> None:
    """One shard, one row group at a time; written to a temp name and renamed (no half files)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(diseases)
    codes = {name: i for i, name in enumerate(diseases)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sizes = [_size(r, store_of) for r in group]
    with pq.ParquetWriter(tmp, schema, compression=COMPRESSION, use_dictionary=DICTIONARY, column_encoding=ENCODING,
                          write_statistics=["sample_id", "split"], use_content_defined_chunking=CDC_OPTIONS,
                          write_page_index=True) as writer:
        for chunk in cut_by_size(group, sizes, ROW_GROUP_MB * 1e6, ROW_GROUP_ROWS):
            rows = [r.to_row(store_of[r.kind].read_image_bytes(r), codes, store_of[r.kind].read_mask_bytes(r))
                    for r in chunk]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=len(rows))
        writer.add_key_value_metadata({"content_defined_chunking": json.dumps(CDC_OPTIONS)})
    os.replace(tmp, path)


def iter_shard_rows(path: Path, columns: list[str]):
    """(row without `image`, PNG bytes) of one shard, a row group at a time (bounded memory); the
    `disease` ClassLabel int is decoded to its name from the shard's own metadata."""
    import pyarrow.parquet as pq

    from builder.core.schema import shard_disease_names

    pf = pq.ParquetFile(path)
    names = shard_disease_names(pf.schema_arrow)
    for g in range(pf.num_row_groups):
        table = pf.read_row_group(g, columns=list(columns) + ["image"])
        images = table.column("image").combine_chunks().field("bytes").to_pylist()
        for row, image in zip(table.drop_columns(["image"]).to_pylist(), images):
            if "disease" in row:
                row["disease"] = names[row["disease"]]
            yield row, image
