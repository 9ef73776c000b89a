"""Stage store: a folder of PNG images, label maps and per-shard record files that stages hand on.

Layout of a store folder::

    images/<sample_id>.png      image bytes (never re-encoded downstream)
    masks/<sample_id>.png       uint8 label map, same size, values 0-4 (sDDI convention)
    segmentation/<sample_id>.png  the published `mask` (healthy, lesion-mapped rows): uint8, values
                                `schema.MASK_LABELS` (0 other, 1 lesion, 2 healed), never re-encoded downstream
    records/<shard>.jsonl       one Record per line, written atomically when the shard is done
    rejections/<shard>.jsonl    one Rejection per line, written with its shard
    markers/<shard>.json        completion marker carrying the shard's fingerprint, written last
    stage.json                  the stage key the outputs were made with (`builder.core.stage.pin`)

A shard is done when its records file exists and (for fingerprinted stages) its marker carries the
expected fingerprint: a rerun skips it, so an interrupted run resumes without redoing finished
work (img2dataset's model), and a shard made from other inputs is never reused.
"""
from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from builder.core.schema import LABEL_VALUES, Record, Rejection

log = logging.getLogger(__name__)


def marker_path(root: os.PathLike, shard: str) -> Path:
    """A shard's completion marker: written last, it carries the shard's fingerprint."""
    return Path(root) / "markers" / f"{shard}.json"


def marker_matches(root: os.PathLike, shard: str, fingerprint: str) -> bool:
    path = marker_path(root, shard)
    return path.is_file() and json.loads(path.read_text()).get("fingerprint") == fingerprint


def write_marker(root: os.PathLike, shard: str, fingerprint: str, **counts: int) -> None:
    body = json.dumps({"fingerprint": fingerprint, **counts}, sort_keys=True) + "\n"
    atomic_write(marker_path(root, shard), body.encode())


class StageStore:
    """Reads and writes one stage's outputs under `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._digests: dict[str, tuple[str, list]] | None = None  # image -> (shard, [size, sha256]), lazily

    # -- paths -------------------------------------------------------------------------
    def image_path(self, sample_id: str) -> Path:
        return self.root / "images" / f"{sample_id}.png"

    def mask_path(self, sample_id: str) -> Path:
        return self.root / "masks" / f"{sample_id}.png"

    def _shard_file(self, kind: str, shard: str) -> Path:
        return self.root / kind / f"{shard}.jsonl"

    # -- writing -----------------------------------------------------------------------
    def put_image(self, sample_id: str, png_bytes: bytes) -> str:
        """Write PNG bytes atomically; returns the path relative to the store root."""
        if not png_bytes.startswith(b"\x89PNG"):
            raise ValueError(f"{sample_id}: image bytes are not PNG; encode with encode_png first")
        atomic_write(self.image_path(sample_id), png_bytes)
        return f"images/{sample_id}.png"

    def put_mask(self, sample_id: str, label_map: np.ndarray) -> None:
        atomic_write(self.mask_path(sample_id), encode_label_map(label_map))

    def put_segmentation(self, sample_id: str, mask: np.ndarray) -> str:
        """Write a row's published `mask` (values `MASK_LABELS`); returns its path relative to the store root."""
        atomic_write(self.root / "segmentation" / f"{sample_id}.png", encode_segmentation(mask))
        return f"segmentation/{sample_id}.png"

    def shard_done(self, shard: str, fingerprint: str | None = None) -> bool:
        """The shard's records exist (and, given a fingerprint, its marker carries that fingerprint, and
        its records file and images are as the marker recorded them: an edited, truncated or missing
        file is named in a warning and the shard counts as not done, so its stage redoes it)."""
        if not self._shard_file("records", shard).exists():
            return False
        if fingerprint is None:
            return True
        marker = self._marker(shard)
        if marker.get("fingerprint") != fingerprint:
            return False
        damage = self._damage(shard, marker)
        if damage:
            log.warning("%s: %s since its stage finished; redoing shard %s", self.root, damage, shard)
            return False
        return True

    def _marker(self, shard: str) -> dict:
        try:
            marker = json.loads((self.root / "markers" / f"{shard}.json").read_text())
        except (OSError, ValueError):  # missing or damaged: the shard is redone
            return {}
        return marker if isinstance(marker, dict) else {}

    def _damage(self, shard: str, marker: dict) -> str | None:
        """What differs from the marker's record of the shard (records digest, image sizes), or None."""
        records = self._shard_file("records", shard)
        if "records_sha256" in marker and _sha256(records.read_bytes()) != marker["records_sha256"]:
            return f"{records.relative_to(self.root)} was edited or damaged"
        for rel, (size, _) in sorted((marker.get("images") or {}).items()):
            path = self.root / rel
            if not path.is_file() or path.stat().st_size != size:
                return f"{rel} is missing or changed size"
        return None

    def finish_shard(self, shard: str, records: Iterable[Record], rejections: Iterable[Rejection],
                     fingerprint: str | None = None) -> None:
        """Write the shard's rejections, its records, then its marker (with `fingerprint`), atomically."""
        rej = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in rejections)
        atomic_write(self._shard_file("rejections", shard), rej.encode())
        recs = sorted(records, key=lambda r: r.sample_id)
        body = "".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in recs)
        atomic_write(self._shard_file("records", shard), body.encode())
        if fingerprint is not None:  # digests of what the shard wrote: reuse checks them (`shard_done`)
            marker = json.dumps({"fingerprint": fingerprint, "records": len(recs),
                                 "records_sha256": _sha256(body.encode()), "images": self._image_digests(recs)},
                                sort_keys=True) + "\n"
            atomic_write(self.root / "markers" / f"{shard}.json", marker.encode())
            self._digests = None

    def _image_digests(self, records: list[Record]) -> dict[str, list]:
        out = {}
        for r in records:
            for rel in (r.image_path or f"images/{r.sample_id}.png", r.mask_path):
                path = self.root / rel if rel else None
                if path is not None and path.is_file():
                    data = path.read_bytes()
                    out[rel] = [len(data), _sha256(data)]
        return out

    # -- reading -----------------------------------------------------------------------
    def records(self) -> list[Record]:
        """All finished records, sorted by sample_id."""
        out = [Record.from_json(d) for d in self._read_jsonl("records")]
        return sorted(out, key=lambda r: r.sample_id)

    def rejections(self) -> list[Rejection]:
        out = [Rejection(**d) for d in self._read_jsonl("rejections")]
        return sorted(out, key=lambda r: (r.stage, r.item_id, r.reason))

    def read_image_bytes(self, record: Record) -> bytes:
        """The record's image, checked against the digest its shard's marker recorded: a damaged or
        replaced file is named, and its shard's marker dropped so that the next run redoes it."""
        return self._checked_bytes(record.image_path or f"images/{record.sample_id}.png")

    def read_mask_bytes(self, record: Record) -> bytes | None:
        """The record's published `mask` PNG (None: it has none), checked as `read_image_bytes` checks images."""
        return self._checked_bytes(record.mask_path) if record.mask_path else None

    def _checked_bytes(self, rel: str) -> bytes:
        from builder.core.errors import BuildError

        data = (self.root / rel).read_bytes()
        want = self._image_digest(rel)
        if want is not None and (len(data) != want[1][0] or _sha256(data) != want[1][1]):
            (self.root / "markers" / f"{want[0]}.json").unlink(missing_ok=True)
            raise BuildError(f"{self.root / rel} differs from what its stage wrote (damaged or edited in the work "
                             f"folder); its shard {want[0]} is marked undone: rerun the same command to redo it")
        return data

    def _image_digest(self, rel: str) -> tuple[str, list] | None:
        """(shard, [size, sha256]) the markers recorded for an image (loaded once per store)."""
        if self._digests is None:
            self._digests = {}
            for m in sorted((self.root / "markers").glob("*.json")) if (self.root / "markers").is_dir() else []:
                try:
                    images = json.loads(m.read_text()).get("images") or {}
                except (OSError, ValueError, AttributeError):
                    continue
                self._digests.update({k: (m.stem, v) for k, v in images.items()})
        return self._digests.get(rel)

    def read_image(self, sample_id: str) -> np.ndarray:
        """RGB uint8 array (H, W, 3)."""
        return decode_rgb(self.image_path(sample_id).read_bytes())

    def read_mask(self, sample_id: str) -> np.ndarray:
        return decode_label_map(self.mask_path(sample_id).read_bytes())

    def read_segmentation(self, sample_id: str) -> np.ndarray:
        """A row's published `mask` as a uint8 array (values `MASK_LABELS`)."""
        return decode_label_map((self.root / "segmentation" / f"{sample_id}.png").read_bytes())

    def _read_jsonl(self, kind: str) -> Iterable[dict]:
        """Every row of every shard file, one at a time (a caller keeps objects, not dicts and lines)."""
        folder = self.root / kind
        if not folder.is_dir():
            return
        for f in sorted(folder.glob("*.jsonl")):
            with f.open(encoding="utf-8", errors="strict") as lines:
                for n, line in enumerate(_lines(f, lines), 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except ValueError:
                            raise _damaged(f, n) from None


def _lines(f: Path, lines):
    try:
        yield from lines
    except UnicodeDecodeError:
        raise _damaged(f, None) from None


def _damaged(f: Path, line: int | None):
    from builder.core.errors import BuildError

    where = f" line {line}" if line else ""
    return BuildError(f"{f}{where} is not a whole record (the work folder was damaged or edited); delete {f} "
                      "and rerun the same command: its stage redoes that shard")


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class ReviewedStore(StageStore):
    """A store seen through a human review: records discarded in review are left out (they are neither
    published nor used downstream), and each becomes a rejection `discarded_in_review` naming its criterion."""

    def __init__(self, root: str | os.PathLike, stage: str, discarded: dict[str, str]):
        super().__init__(root)
        self.stage = stage
        present = {r.sample_id for r in super().records()}
        self.dropped = {i: c for i, c in sorted(discarded.items()) if i in present}  # id -> criterion

    def records(self) -> list[Record]:
        return [r for r in super().records() if r.sample_id not in self.dropped]

    def rejections(self) -> list[Rejection]:
        extra = [Rejection(self.stage, i, "discarded_in_review", f"{i}: discarded in human review ({c})", None)
                 for i, c in self.dropped.items()]
        return sorted(super().rejections() + extra, key=lambda r: (r.stage, r.item_id, r.reason))


def encode_png(rgb: np.ndarray, compress_level: int = 6) -> bytes:
    """Deterministic PNG encoding (no timestamps or text chunks)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def encode_segmentation(mask: np.ndarray) -> bytes:
    """A published `mask` as a single-channel PNG; values outside `MASK_LABELS` are refused."""
    from builder.core.schema import MASK_LABELS

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"segmentation mask must be 2-D, got shape {m.shape}")
    bad = np.setdiff1d(np.unique(m), np.arange(len(MASK_LABELS)))
    if bad.size:
        raise ValueError(f"segmentation mask has values {bad.tolist()} outside 0-{len(MASK_LABELS) - 1} {MASK_LABELS}")
    return encode_png(m.astype(np.uint8), compress_level=9)


def decode_rgb(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def encode_label_map(label_map: np.ndarray) -> bytes:
    lm = np.asarray(label_map)
    if lm.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {lm.shape}")
    bad = np.setdiff1d(np.unique(lm), LABEL_VALUES)
    if bad.size:
        raise ValueError(f"label map has values {bad.tolist()} outside {LABEL_VALUES}")
    return encode_png(lm.astype(np.uint8), compress_level=1)


def decode_label_map(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:  # disk full, Ctrl-C: no half-written file left behind
        tmp.unlink(missing_ok=True)
        raise
