"""Lesion-mapping throughput on the real sDDI masks: exact vectorized placement vs the original Python loop.

Run: python benchmarks/lesion_mapping.py [--pairs 120] [--naive-pairs 24] [--sizes 256 512]

Both sides apply the same rule (the lesion's feathered footprint inside skin|lesion|marker with
margin pad, pads 10, 5, 0) to the same (base, donor) pairs and must produce identical images; the
naive side finds offsets like the original research code (erode the skin mask by pad, then loop
over every candidate corner in Python). The search alone is also timed with the FFT method forced,
the previous fast path. Single-threaded, so figures are per core; times are CPU
time of the benchmark thread (`time.thread_time`), medians per image after a warm-up, so other
processes on a shared machine do not inflate them. PNG decoding of the inputs and encoding of the
outputs (image + label map) are timed separately.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # per-core figures: keep numpy/OpenCV on one thread

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from builder.core.schema import LABEL_LESION, LABEL_SKIN  # noqa: E402
from builder.core.store import decode_label_map, decode_rgb, encode_label_map, encode_png  # noqa: E402
from curation.source.masks import resize_nearest  # noqa: E402
from generation.lesion_map.placement import (allowed_region, choose_offset, composite, cut_patch, fit_donor,  # noqa: E402
                                  map_lesion, naive_valid_offsets, valid_offsets, with_margin)

SETTINGS = dict(pads=(10, 5, 0), rotate=True, dilate_px=1, feather=1.5)
SKIN = [(224, 182, 160), (178, 126, 94), (96, 64, 48)]


def clock() -> float:
    return time.thread_time()


def photo(label_map: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros(label_map.shape + (3,), np.float32) + (60, 70, 80)
    skin = np.array(SKIN[seed % 3], np.float32)
    img[label_map == LABEL_SKIN] = skin
    img[label_map == LABEL_LESION] = skin * 0.5
    img[label_map == 2], img[label_map == 3] = (90, 40, 120), (235, 235, 235)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def naive_map_lesion(base_rgb, base_map, donor_rgb, donor_map, *, pads, rotate, dilate_px, feather, seed):
    """The same steps as `map_lesion`, with the Python corner loop finding offsets."""
    rng = np.random.default_rng(seed)
    angle = round(float(rng.uniform(0.0, 360.0)), 3) if rotate else 0.0
    donor_rgb, donor_map, _ = fit_donor(donor_rgb, donor_map, base_map.shape)
    patch = cut_patch(donor_rgb, donor_map, angle, dilate_px, feather)
    for pad in pads:
        offset = choose_offset(naive_valid_offsets(base_map, patch.support, pad), rng)
        if offset is not None:
            return composite(base_rgb, base_map, patch, offset)[0]
    return None


def load_pairs(data: Path, size: int, n: int) -> list[tuple]:
    """n (base, donor) pairs of PNG bytes built from real masks; bases are healed (lesion -> skin)."""
    masks = [np.load(p).astype(np.uint8) for p in sorted((data / "sddi_masks").glob("*.npy"))]
    masks = [m for m in masks if (m == LABEL_LESION).any() and (m == LABEL_SKIN).mean() > 0.2]
    rng = np.random.default_rng(0)
    pairs = []
    for k in range(n):
        b, d = rng.choice(len(masks), 2, replace=False)
        base = resize_nearest(np.where(masks[b] == LABEL_LESION, LABEL_SKIN, masks[b]).astype(np.uint8), size, size)
        donor = resize_nearest(masks[d], size, size)
        pairs.append((encode_png(photo(base, k)), encode_label_map(base),
                      encode_png(photo(donor, k + 1)), encode_label_map(donor), k))
    return pairs


def run_size(data: Path, size: int, n: int, n_naive: int) -> dict:
    pairs = load_pairs(data, size, n)
    t_decode, t_fast, t_encode, t_naive, outs, rejected = [], [], [], [], [], 0
    for bi, bm, di, dm, seed in pairs[:3]:  # warm-up: lazy imports, FFT plan caches
        map_lesion(decode_rgb(bi), decode_label_map(bm), decode_rgb(di), decode_label_map(dm), seed=seed, **SETTINGS)
    for bi, bm, di, dm, seed in pairs:
        t0 = clock()
        args = (decode_rgb(bi), decode_label_map(bm), decode_rgb(di), decode_label_map(dm))
        t1 = clock()
        try:
            m = map_lesion(*args, seed=seed, **SETTINGS)
        except ValueError:
            rejected += 1
            m = None
        t2 = clock()
        if m is not None:
            encode_png(m.rgb), encode_label_map(m.label_map)
        t3 = clock()
        t_decode.append(t1 - t0), t_fast.append(t2 - t1), t_encode.append(t3 - t2)
        outs.append((args, m))
    t_place, t_place_naive, t_place_fft = [], [], []
    for k, (args, m) in enumerate(outs[:n_naive]):
        t0 = clock()
        ref = naive_map_lesion(*args, seed=pairs[k][4], **SETTINGS)
        t_naive.append(clock() - t0)
        if (ref is None) != (m is None) or (ref is not None and not np.array_equal(ref, m.rgb)):
            raise SystemExit(f"naive and fast placement disagree on pair {k} at {size}px")
        # The placement search alone (pad 10), the part the naive loop replaces.
        support = cut_patch(*fit_donor(args[2], args[3], args[1].shape)[:2], 0.0, 1, 1.5).support
        # Fast then FFT then naive: the fast path runs after the previous pair's naive loop (colder
        # caches), so the FFT comparison does not favour it.
        t0 = clock()
        fast = valid_offsets(with_margin(allowed_region(args[1]), 10), support)
        t1 = clock()
        fft = valid_offsets(with_margin(allowed_region(args[1]), 10), support, "fft")
        t2 = clock()
        slow = naive_valid_offsets(args[1], support, 10)
        t_place.append(t1 - t0), t_place_fft.append(t2 - t1), t_place_naive.append(clock() - t2)
        assert np.array_equal(fast, slow) and np.array_equal(fft, slow)
    mean = statistics.median
    fast_same = mean(t_fast[:n_naive])
    total = mean(t_decode) + mean(t_fast) + mean(t_encode)
    return {"size": size, "pairs": n, "naive_pairs": n_naive, "rejected": rejected,
            "decode_ms": 1e3 * mean(t_decode), "map_ms": 1e3 * mean(t_fast), "encode_ms": 1e3 * mean(t_encode),
            "naive_map_ms": 1e3 * mean(t_naive), "map_ms_same_pairs": 1e3 * fast_same,
            "speedup": mean(t_naive) / fast_same, "place_ms": 1e3 * mean(t_place),
            "naive_place_ms": 1e3 * mean(t_place_naive), "fft_place_ms": 1e3 * mean(t_place_fft),
            "place_speedup": mean(t_place_naive) / mean(t_place), "map_img_s": 1 / mean(t_fast),
            "naive_img_s": 1 / mean(t_naive), "end_to_end_img_s": 1 / total,
            "encode_share": mean(t_encode) / total}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("CGDDI_SHARED_DATA", ROOT.parent / "shared" / "data")))
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--pairs", type=int, default=120, help="pairs mapped by the fast path per size")
    p.add_argument("--naive-pairs", type=int, default=24, help="of those, pairs also run by the naive loop")
    args = p.parse_args()
    import cv2

    cv2.setNumThreads(1)
    rows = [run_size(args.data, s, args.pairs, min(args.naive_pairs, args.pairs)) for s in args.sizes]
    print(f"lesion mapping, one core, real sDDI masks, pads {list(SETTINGS['pads'])}, rotate, feather 1.5; "
          "naive and fast outputs checked identical")
    head = (f"{'size':>5} {'pairs':>6} {'naive search ms':>16} {'FFT search ms':>14} {'fast search ms':>15} {'speedup':>8} "
            f"{'naive map ms':>13} {'fast map ms':>12} {'speedup':>8} {'fast img/s':>11} {'decode ms':>10} "
            f"{'encode ms':>10} {'end-to-end img/s':>17} {'encode share':>13}")
    print(head)
    for r in rows:
        print(f"{r['size']:>5} {r['pairs']:>6} {r['naive_place_ms']:>16.1f} {r['fft_place_ms']:>14.2f} {r['place_ms']:>15.2f} "
              f"{r['place_speedup']:>7.0f}x {r['naive_map_ms']:>13.1f} {r['map_ms_same_pairs']:>12.2f} "
              f"{r['speedup']:>7.0f}x {r['map_img_s']:>11.0f} {r['decode_ms']:>10.2f} {r['encode_ms']:>10.2f} "
              f"{r['end_to_end_img_s']:>17.0f} {r['encode_share']:>12.0%}")
    print("search = valid offsets for one pad (10) over the whole mask (fast = auto: bit-packed erosion, FFT for "
          "fragmented footprints); speedups vs naive; map = angle, cut, dilate, feather, "
          "search over pads 10/5/0, composite; end-to-end adds PNG decode of inputs and encode of outputs")
    headline = {}
    for r in rows:
        s = r["size"]
        headline.update({f"search_speedup_vs_naive_{s}px": round(r["place_speedup"], 1),
                         f"search_speedup_vs_fft_{s}px": round(r["fft_place_ms"] / r["place_ms"], 1),
                         f"map_speedup_vs_naive_{s}px": round(r["speedup"], 1),
                         f"map_images_per_s_per_core_{s}px": round(r["map_img_s"], 1),
                         f"naive_images_per_s_per_core_{s}px": round(r["naive_img_s"], 2),
                         f"end_to_end_images_per_s_per_core_{s}px": round(r["end_to_end_img_s"], 1),
                         f"png_encode_share_{s}px": round(r["encode_share"], 3),
                         f"rejected_{s}px": r["rejected"]})
        headline[f"speedup_vs_naive_{s}"] = round(r["speedup"], 1)  # the plain headline: whole map
    print(json.dumps(headline))


if __name__ == "__main__":
    main()
