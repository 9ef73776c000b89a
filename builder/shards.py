"""Parquet shards in the Hub layout `data/<config>/<split>-XXXXX-of-YYYYY.parquet`, streamed, PNG bytes as-is."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from builder.schema import SPLITS, Record, arrow_schema
from builder.store import StageStore

ROWS_PER_GROUP = 64  # small row groups: streaming readers fetch little at a time


def plan_shards(records: list[Record], store_of: dict[str, StageStore], shard_mb: float) -> list[list[Record]]:
    """Cut sorted records into consecutive groups of about `shard_mb` MB of image bytes (>= 1 row each)."""
    limit = shard_mb * 1e6
    groups: list[list[Record]] = [[]]
    size = 0
    for r in sorted(records, key=lambda r: r.sample_id):
        n = os.path.getsize(store_of[r.kind].root / r.image_path)
        if groups[-1] and size + n > limit:
            groups.append([])
            size = 0
        groups[-1].append(r)
        size += n
    return [g for g in groups if g]


def write_shards(records: list[Record], store_of: dict[str, StageStore], out_dir: Path, config: str,
                 shard_mb: float) -> list[dict]:
    """Write one config's shards for every split; returns one file entry per shard (path, rows, bytes, sha256)."""
    entries = []
    for split in SPLITS:
        rows = [r for r in records if r.split == split]
        if not rows:
            continue
        groups = plan_shards(rows, store_of, shard_mb)
        for i, group in enumerate(groups):
            rel = f"data/{config}/{split}-{i:05d}-of-{len(groups):05d}.parquet"
            _write_one(group, store_of, out_dir / rel)
            entries.append(_entry(out_dir, rel, config, split, len(group)))
    return entries


def _write_one(group: list[Record], store_of: dict[str, StageStore], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(tmp, schema, compression="zstd", write_statistics=True) as writer:
        for start in range(0, len(group), ROWS_PER_GROUP):
            chunk = group[start:start + ROWS_PER_GROUP]
            rows = [r.to_row(store_of[r.kind].read_image_bytes(r)) for r in chunk]
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
    os.replace(tmp, path)


def _entry(out_dir: Path, rel: str, config: str, split: str, rows: int) -> dict:
    data = (out_dir / rel).read_bytes()
    return {"path": rel, "config": config, "split": split, "rows": rows, "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}
