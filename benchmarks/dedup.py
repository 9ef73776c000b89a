"""Benchmark de-duplication: hashing throughput on real photos, near-duplicate search at 10k-1M.

    python benchmarks/dedup.py [--sizes 10000,100000,1000000] [--radius 6] [--passes 5]

Hashing: decode-only vs decode + pixel hash + pHash, on the real Fitzpatrick17k photos in
../shared/data (read in place), serially and over all cores. Search: generated uniform 64-bit
hashes with 1% planted near copies (0..radius bits flipped); multi-index hashing (ours) vs the
brute-force popcount baseline and faiss IndexBinaryMultiHash, in the same run. Where a baseline
would take minutes it runs on a random subset of queries and is extrapolated linearly (marked ~).
The last line is one JSON object of headline figures.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.dedup import brute_force_pairs, choose_chunks, hash_images, near_pairs  # noqa: E402

SHARED = Path(os.environ.get("CGDDI_SHARED_DATA", ROOT.parent / "shared" / "data"))


def bench_hashing(passes: int) -> dict:
    from PIL import Image

    files = sorted((SHARED / "fitz17k_lesions" / "images").iterdir())
    items = [(f"{p}-{f.stem}", f) for p in range(passes) for f in files]
    t = time.perf_counter()
    for _, f in items:
        with Image.open(io.BytesIO(f.read_bytes())) as im:
            np.asarray(im.convert("RGB"))
    decode = len(items) / (time.perf_counter() - t)
    t = time.perf_counter()
    hash_images(items, workers=1)
    serial = len(items) / (time.perf_counter() - t)
    cores = os.cpu_count() or 1
    t = time.perf_counter()
    hash_images(items, workers=cores)
    parallel = len(items) / (time.perf_counter() - t)
    mpx = np.mean([Image.open(f).size[0] * Image.open(f).size[1] for f in files]) / 1e6
    return {"images": len(items), "megapixels": mpx, "decode": decode, "serial": serial,
            "parallel": parallel, "cores": cores}


def planted_codes(n: int, radius: int, seed: int = 0) -> tuple[np.ndarray, set]:
    """Uniform random hashes; 1% of them overwritten by copies of others with 0..radius bit flips."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    k = max(1, n // 100)
    perm = rng.permutation(n)
    src, dst = perm[:k], perm[k:2 * k]
    nflip = rng.integers(0, radius + 1, size=k)
    masks = np.zeros(k, np.uint64)
    for i in range(k):  # distinct bit positions per planted copy
        for b in rng.choice(64, nflip[i], replace=False):
            masks[i] |= np.uint64(1) << np.uint64(b)
    codes[dst] = codes[src] ^ masks
    planted = {(min(a, b), max(a, b)) for a, b in zip(src.tolist(), dst.tolist())}
    return codes, planted


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def brute_time(codes: np.ndarray, radius: int, max_queries: int) -> tuple[float, bool]:
    """Full brute force when the pair count is small; else `max_queries` rows, scaled (quadratic)."""
    n = len(codes)
    if n <= max_queries:
        _, s = _time(lambda: brute_force_pairs(codes, radius))
        return s, False
    q = codes[:max_queries]
    _, s = _time(lambda: [np.flatnonzero(np.bitwise_count(q[i:i + 256, None] ^ codes[None, :]) <= radius)
                          for i in range(0, len(q), 256)])
    return s * n / max_queries / 2, True  # i < j: half the pairs


def faiss_time(codes: np.ndarray, radius: int, max_queries: int) -> tuple[float, bool]:
    """faiss IndexBinaryMultiHash with the same exact MIH parameters (3 x 21 bits, 2 flips)."""
    import faiss

    n = len(codes)
    xb = codes.view(np.uint8).reshape(n, 8)
    idx = faiss.IndexBinaryMultiHash(64, 3, 21)
    idx.nflip = 2
    _, t_add = _time(lambda: idx.add(xb))
    q = min(n, max_queries)
    _, t_search = _time(lambda: idx.range_search(xb[:q], radius + 1))  # faiss: distance < radius
    return t_add + t_search * n / q, q < n


def bench_search(sizes: list[int], radius: int, brute_queries: int, faiss_queries: int) -> list[dict]:
    rows = []
    for n in sizes:
        codes, planted = planted_codes(n, radius, seed=n)
        pairs, ours = _time(lambda: near_pairs(codes, radius))
        found = set(map(tuple, pairs[:, :2].tolist()))
        recall = len(planted & found) / len(planted)
        brute, b_est = brute_time(codes, radius, brute_queries)
        exact = None
        if not b_est:
            exact = bool(np.array_equal(brute_force_pairs(codes, radius), pairs))
        fa, f_est = faiss_time(codes, radius, faiss_queries) if radius <= 6 else (float("nan"), False)
        rows.append({"n": n, "chunks": choose_chunks(n, radius), "ours_s": ours, "brute_s": brute,
                     "brute_est": b_est, "faiss_s": fa, "faiss_est": f_est, "pairs": len(pairs),
                     "planted": len(planted), "recall": recall, "same_as_brute": exact})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--radius", type=int, default=6, help="Hamming threshold (config default 6)")
    ap.add_argument("--passes", type=int, default=5, help="passes over the 39 real photos")
    ap.add_argument("--brute-queries", type=int, default=10000)
    ap.add_argument("--faiss-queries", type=int, default=50000)
    args = ap.parse_args()
    os.environ.setdefault("CGDDI_PROGRESS", "0")
    from builder.core.progress import set_progress

    set_progress(False)
    h = bench_hashing(args.passes)
    print(f"hashing {h['images']} real photos ({h['megapixels']:.2f} MP mean), {h['cores']} cores")
    print(f"  {'decode only (1 core)':<34}{h['decode']:>9.1f} img/s")
    print(f"  {'decode + pixel hash + pHash, 1 core':<34}{h['serial']:>9.1f} img/s")
    print(f"  {'same, all cores':<34}{h['parallel']:>9.1f} img/s  "
          f"({h['parallel'] / h['cores']:.1f} img/s per core)")
    rows = bench_search([int(s) for s in args.sizes.split(",")], args.radius,
                        args.brute_queries, args.faiss_queries)
    print(f"\nnear-duplicate search, radius {args.radius} bits (~ = extrapolated from a query subset)")
    print(f"{'hashes':>9} {'m':>3} {'ours s':>8} {'brute s':>10} {'faiss MIH s':>12} "
          f"{'speed-up':>9} {'pairs':>7} {'planted':>8} {'recall':>7} {'=brute':>7}")
    for r in rows:
        b = ("~" if r["brute_est"] else "") + f"{r['brute_s']:.2f}"
        f = ("~" if r["faiss_est"] else "") + f"{r['faiss_s']:.2f}"
        print(f"{r['n']:>9} {r['chunks']:>3} {r['ours_s']:>8.2f} {b:>10} {f:>12} "
              f"{r['brute_s'] / r['ours_s']:>8.0f}x {r['pairs']:>7} {r['planted']:>8} "
              f"{r['recall']:>7.4f} {str(r['same_as_brute']):>7}")
    head = {"decode_img_per_s": round(h["decode"], 1),
            "hash_img_per_s_per_core": round(h["parallel"] / h["cores"], 1),
            "hash_img_per_s_1core": round(h["serial"], 1)}
    for r in rows:
        tag = f"{r['n'] // 1000}k" if r["n"] < 1_000_000 else f"{r['n'] // 1_000_000}m"
        head[f"search_{tag}_s"] = round(r["ours_s"], 3)
        head[f"brute_{tag}_s"] = round(r["brute_s"], 2)
        head[f"recall_{tag}"] = round(r["recall"], 4)
    head["recall"] = round(min(r["recall"] for r in rows), 4)  # worst size: the plain headline
    print(json.dumps(head))


if __name__ == "__main__":
    main()
