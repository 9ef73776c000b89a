"""De-duplication: exact (hash of decoded pixels) and near (64-bit pHash, Hamming radius) at scale.

Near-duplicate search is exact multi-index hashing, sub-quadratic and without a recall trade-off:
split the 64 bits into `m` chunks; two hashes within Hamming distance `r` differ in at most `r`
chunks, so they agree exactly on at least `k = m - r` of them (pigeonhole). For every choice of
`k` chunks, sort the hashes by those chunks and pair up equal runs; then verify each candidate
with a popcount. `m` is chosen per call to balance sorts (C(m, k) of them) against random
candidate pairs (about N^2 / 2^(bits in k chunks)); 1M hashes at r=6 take seconds on one core.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from builder.core.schema import Rejection
from builder.core.workers import worker_pool

STAGE = "dedup"


@dataclasses.dataclass(frozen=True)
class ImageHash:
    """What de-duplication knows of one image."""

    sample_id: str
    pixel_hash: str  # blake2b of shape + decoded RGB bytes: re-encoding the same pixels matches
    phash: int  # 64-bit DCT perceptual hash (imagehash.phash, row-major bits, MSB first)
    pixels: int  # width * height: the larger copy is the one kept


@dataclasses.dataclass(frozen=True)
class Duplicate:
    """A dropped copy: `sample_id` duplicates the kept `dup_of` (exact or within `hamming` bits)."""

    sample_id: str
    dup_of: str
    kind: str  # "exact" | "near"
    hamming: int

    @property
    def reason(self) -> str:
        return f"{self.kind}_duplicate"

    def to_rejection(self, stage: str = STAGE) -> Rejection:
        return Rejection(stage, self.sample_id, self.reason,
                         f"dup_of={self.dup_of} ({self.kind}, pHash Hamming distance {self.hamming})")


# -- hashing ---------------------------------------------------------------------------------
def pixel_hash(rgb: np.ndarray) -> str:
    """Hash of decoded pixels (shape included), blind to file format and metadata."""
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
    return h.hexdigest()


def phash64(rgb: np.ndarray) -> int:
    """imagehash's 64-bit pHash of an RGB array, as an unsigned int."""
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(rgb)).hash.reshape(-1)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hash_image_bytes(sample_id: str, data: bytes) -> ImageHash:
    """Decode once, then hash the pixels exactly and perceptually. Raises on undecodable bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = np.asarray(im.convert("RGB"))
    return ImageHash(sample_id, pixel_hash(rgb), phash64(rgb), int(rgb.shape[0] * rgb.shape[1]))


def _hash_one(item: tuple[str, str]) -> ImageHash | Rejection:
    sample_id, path = item
    try:
        return hash_image_bytes(sample_id, Path(path).read_bytes())
    except Exception as e:  # PIL raises many types for a corrupt file; the sample is rejected
        return Rejection(STAGE, sample_id, "unreadable_image", f"{path}: cannot decode ({e})", path)


def hash_images(items: Iterable[tuple[str, str | os.PathLike]], workers: int | None = None,
                desc: str = "hashing") -> tuple[list[ImageHash], list[Rejection]]:
    """Hash (sample_id, image path) pairs over `workers` processes (default: all cores).

    Returns hashes and rejections (unreadable images), both sorted by sample_id.
    """
    from builder.core.progress import progress

    todo = sorted((sid, str(p)) for sid, p in items)
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(todo) < 2 * workers:
        results = [_hash_one(t) for t in progress(todo, desc, total=len(todo))]
    else:
        with worker_pool(workers) as pool:
            chunk = max(1, min(64, len(todo) // (8 * workers)))
            results = list(progress(pool.map(_hash_one, todo, chunksize=chunk), desc, total=len(todo)))
    hashes = [r for r in results if isinstance(r, ImageHash)]
    rejections = [r for r in results if isinstance(r, Rejection)]
    return hashes, rejections


# -- near-duplicate search -------------------------------------------------------------------
def _chunk_bounds(m: int) -> list[tuple[int, int]]:
    """Split 64 bits into m contiguous chunks of near-equal width: [(shift, width), ...]."""
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0] + widths[:-1]).tolist()
    return list(zip(shifts, widths))


def choose_chunks(n: int, radius: int) -> int:
    """Number of chunks m minimising C(m, m-r) * (sort cost + expected random candidates)."""
    if radius >= 32:
        raise ValueError(f"radius={radius}: multi-index search only helps well below 32 bits of 64")
    best, best_cost = radius + 1, math.inf
    for m in range(radius + 1, min(64, radius + 12) + 1):
        k = m - radius
        key_bits = sum(sorted(w for _, w in _chunk_bounds(m))[:k])  # the narrowest k chunks
        random_pairs = n * n / 2 / 2.0 ** key_bits
        cost = math.comb(m, k) * (n * max(1.0, math.log2(max(n, 2)) / 8) + 4 * random_pairs)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _equal_runs(keys: np.ndarray, key_bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs (a, b) of equal keys, all pairs within each run of equal keys, one offset at a
    time (a caller filters each piece, so a run of thousands of equal keys never sits in memory
    as one list of its pairs)."""
    n = len(keys)
    if key_bits + max(1, (n - 1).bit_length()) <= 64:
        # Sorting key|index packed in one uint64 is ~1.5x faster than argsort and as stable.
        idx_bits = max(1, (n - 1).bit_length())
        packed = np.sort((keys << np.uint64(idx_bits)) | np.arange(n, dtype=np.uint64))
        sk = packed >> np.uint64(idx_bits)
        order = (packed & np.uint64((1 << idx_bits) - 1)).astype(np.int64)
    else:
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
    d = 1
    while d < len(sk):
        same = np.flatnonzero(sk[d:] == sk[:-d])
        if same.size == 0:
            break  # runs of length d+1 would also contain an equal pair at offset d
        yield order[same], order[same + d]
        d += 1


PairFilter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def near_pairs(codes: np.ndarray, radius: int, chunks: int | None = None,
               keep: PairFilter | None = None) -> np.ndarray:
    """All index pairs (i, j, distance), i < j, with Hamming(codes[i], codes[j]) <= radius.

    `codes` is a 1-D uint64 array of 64-bit hashes. Exact (recall 1.0) by the pigeonhole argument
    in the module docstring. Rows are sorted by (i, j). `keep(i, j)` (index arrays, i < j) returns
    a boolean mask of the pairs the caller wants; it runs on every piece as it is found, so memory
    holds only kept pairs (synthetics of one base are all near each other, and a caller that
    wants pairs across splits or across lineages would otherwise hold all of them).
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    n = len(codes)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if n < 2:
        return np.empty((0, 3), np.int64)
    m = chunks or choose_chunks(n, radius)
    bounds = _chunk_bounds(m)
    parts = [((codes >> np.uint64(s)) & np.uint64((1 << w) - 1), w) for s, w in bounds]
    found = np.empty(0, np.int64)  # kept pairs as i * n + j: sorted, unique
    for combo in itertools.combinations(range(m), max(1, m - radius)):
        key, key_bits = np.zeros(n, np.uint64), 0
        for c in combo:  # concatenate the chosen chunks into one key (<= 64 bits)
            key = (key << np.uint64(parts[c][1])) | parts[c][0]
            key_bits += parts[c][1]
        pieces = []
        for a, b in _equal_runs(key, key_bits):
            ok = np.bitwise_count(codes[a] ^ codes[b]) <= radius
            i, j = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
            if keep is not None and i.size:
                wanted = keep(i, j)
                i, j = i[wanted], j[wanted]
            if i.size:
                pieces.append(i * n + j)
        if pieces:  # a pair may match in many combos: one copy
            found = np.union1d(found, np.concatenate(pieces))
    i, j = found // n, found % n
    return np.stack([i, j, np.bitwise_count(codes[i] ^ codes[j]).astype(np.int64)], axis=1)


def group_filter(groups: Sequence, same: bool) -> PairFilter:
    """`keep` for `near_pairs`: pairs whose items are in the same group (`same`) or in different ones."""
    index: dict = {}
    g = np.array([index.setdefault(x, len(index)) for x in groups], np.int64)
    return (lambda i, j: g[i] == g[j]) if same else (lambda i, j: g[i] != g[j])


def lineage_filter(sources: Sequence[Iterable[str]]) -> PairFilter:
    """`keep` for `near_pairs`: pairs that share no source id (variants of one source are by design)."""
    index: dict[str, int] = {}
    rows = [sorted({index.setdefault(s, len(index)) for s in src}) for src in sources]
    width = max((len(r) for r in rows), default=0)
    table = np.full((len(rows), max(width, 1)), -1, np.int64)
    for k, r in enumerate(rows):
        table[k, :len(r)] = r

    def keep(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        shared = np.zeros(len(i), bool)
        for a in range(table.shape[1]):
            ia = table[i, a]
            for b in range(table.shape[1]):
                shared |= (ia >= 0) & (ia == table[j, b])
        return ~shared
    return keep


def brute_force_pairs(codes: np.ndarray, radius: int, block: int = 2048) -> np.ndarray:
    """The quadratic baseline: every pair's popcount (for tests and the benchmark)."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    out = []
    for s in range(0, len(codes), block):
        d = np.bitwise_count(codes[s:s + block, None] ^ codes[None, :])
        i, j = np.nonzero(d <= radius)
        i = i + s
        keep = i < j
        out.append(np.stack([i[keep], j[keep], d[i[keep] - s, j[keep]].astype(np.int64)], axis=1))
    return np.concatenate(out) if out else np.empty((0, 3), np.int64)


# -- keep choice -----------------------------------------------------------------------------
def _priority(h: ImageHash) -> tuple:
    """Keep the larger image; ties by sample_id, so the choice never depends on input order."""
    return (-h.pixels, h.sample_id)


def find_duplicates(hashes: Sequence[ImageHash], radius: int, group_of: dict[str, str] | None = None,
                    lineage: dict[str, set[str]] | None = None) -> list[Duplicate]:
    """Copies to drop inside each group (e.g. split); one kept per exact or near cluster.

    Exact copies (same pixel hash) go first. Near: greedy in keep-priority order, an image is
    dropped when it lies within `radius` of an already kept one, and `dup_of` names that image
    (so every `dup_of` is a true near-duplicate, never a chain). With `lineage` (sample_id ->
    source ids), near pairs sharing a source are variants by design (two lesions mapped onto one
    base), not copies, and both stay. Sorted by sample_id.
    """
    group_of = group_of or {}
    ranked = sorted(hashes, key=_priority)
    dups: list[Duplicate] = []
    first: dict[tuple[str | None, str], str] = {}
    unique: list[ImageHash] = []
    for h in ranked:
        key = (group_of.get(h.sample_id), h.pixel_hash)
        if key in first:
            dups.append(Duplicate(h.sample_id, first[key], "exact", 0))
        else:
            first[key] = h.sample_id
            unique.append(h)
    dups.extend(_near_greedy(unique, radius, group_of, lineage or {}))
    return sorted(dups, key=lambda d: d.sample_id)


def _near_greedy(ranked: list[ImageHash], radius: int, group_of: dict[str, str],
                 lineage: dict[str, set[str]]) -> list[Duplicate]:
    codes = np.array([h.phash for h in ranked], dtype=np.uint64)
    same_group = group_filter([group_of.get(h.sample_id) for h in ranked], same=True)
    other_lineage = lineage_filter([lineage.get(h.sample_id, ()) for h in ranked])
    pairs = near_pairs(codes, radius, keep=lambda i, j: same_group(i, j) & other_lineage(i, j))
    nbrs: dict[int, list[tuple[int, int]]] = {}
    for i, j, d in pairs.tolist():  # i < j: i has priority (ranked order)
        nbrs.setdefault(i, []).append((j, d))
    dropped: dict[int, tuple[int, int]] = {}
    for i in sorted(nbrs):
        if i in dropped:
            continue  # a dropped image claims nothing: its neighbours may still be kept
        for j, d in nbrs[i]:
            dropped.setdefault(j, (i, d))
    return [Duplicate(ranked[j].sample_id, ranked[i].sample_id, "near", d) for j, (i, d) in dropped.items()]


def similar_pairs(hashes: Sequence[ImageHash], radius: int,
                  keep: PairFilter | None = None) -> list[tuple[str, str, int]]:
    """(id_a, id_b, distance), id_a < id_b, for every pair within `radius` (exact copies included:
    equal pixels give equal pHashes), sorted. `keep` (over sample_id-sorted indices) as in `near_pairs`."""
    ordered = sorted(hashes, key=lambda h: h.sample_id)
    codes = np.array([h.phash for h in ordered], dtype=np.uint64)
    return [(ordered[i].sample_id, ordered[j].sample_id, d)
            for i, j, d in near_pairs(codes, radius, keep=keep).tolist()]


def cross_group_pairs(hashes: Sequence[ImageHash], radius: int,
                      group_of: dict[str, str]) -> list[tuple[str, str, int]]:
    """(id_a, id_b, distance) for near or exact duplicates in different groups, sorted.

    Across splits these are leakage, not duplicates: the caller decides which side leaves.
    """
    ordered = sorted(hashes, key=lambda h: h.sample_id)
    return similar_pairs(ordered, radius, keep=group_filter([group_of.get(h.sample_id) for h in ordered], same=False))
