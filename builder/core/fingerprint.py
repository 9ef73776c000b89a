"""Fingerprints: a source folder's content (table, image and mask bytes) and combinations of fingerprints.

A source fingerprint depends on the bytes of the metadata table and of every image and mask file
ingest reads, on their names relative to their folder (so a copied folder keeps its fingerprint)
and on the source's name (it is the prefix of every id). `combine` chains fingerprints and
settings into one, the way `datasets` keys its cache: same inputs -> same key, on any machine.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

LENGTH = 16  # hex digits kept: 64 bits, ample for telling builds apart


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, streamed (photos and shards can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def combine(*parts) -> str:
    """One fingerprint of JSON-able parts (fingerprints, settings dicts, versions), order-sensitive."""
    blob = json.dumps(parts, sort_keys=True, default=list, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:LENGTH]


def source_fingerprint(name: str, layout: str, table: Path, files: Iterable[tuple[str, Path]]) -> str:
    """Fingerprint of a source: its name and layout, the table's bytes, and each `(label, path)` file's
    label and bytes. Labels name a file stably (e.g. `image:000001.png`, `mask:000001.npy`); the
    order of `files` does not matter."""
    entries = sorted({(label, file_sha256(path)) for label, path in files})
    return combine("source", name, layout, file_sha256(table), entries)
