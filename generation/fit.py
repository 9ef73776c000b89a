"""Where a shape fits inside a mask, exactly: every top-left offset at which a footprint lies wholly
inside an allowed region, found at once by a bit-parallel erosion with the footprint's column runs,
or by FFT-correlating the footprint with the forbidden map where that is cheaper (fragmented
footprints). Lesion placement (`generation.lesion_map.placement`) asks where a donor lesion fits a
base's skin; the exemplar fill (`generation.healthy.exemplar`) asks where a hole's shape fits known skin.
"""
from __future__ import annotations

import math
import threading

import numpy as np


def valid_offsets(inside: np.ndarray, support: np.ndarray, method: str = "auto") -> np.ndarray:
    """Bool map over top-left offsets (H - h + 1, W - w + 1): True where all of `support` is `inside`.

    Two exact methods, same answer; `auto` takes the one its cost model expects to be faster:
    - "bits": binary erosion by the footprint's column runs on bit-packed rows: pure integer logic.
    - "fft": the FFT correlation counts outside pixels under the footprint. Counts are integers and
      float64 round-off is below log2(H W) * 1e-16 * sqrt(H W) * support area (< 1e-5 even for
      2048 px images), so `< 0.5` is the exact "no outside pixel" test.
    The search is cropped to the bounding box of `inside` (no valid patch can reach past it).
    """
    big_h, big_w = inside.shape
    h, w = support.shape
    out = np.zeros((max(big_h - h + 1, 0), max(big_w - w + 1, 0)), bool)
    y0, x0, ch, cw = bbox(inside)
    if ch < h or cw < w:
        return out
    crop = inside[y0:y0 + ch, x0:x0 + cw]
    runs = _column_runs(support)
    if not runs[0]:  # an empty footprint fits anywhere in the crop
        method = "fft"
    if method == "auto":
        method = "bits" if _bits_cost(crop.shape, h, runs) < _fft_cost(crop.shape) else "fft"
    if method == "bits":
        fits = _fits_bitwise(crop, h, w, runs)
    elif method == "fft":
        fits = _correlate_outside(crop, support)[:ch - h + 1, :cw - w + 1] < 0.5
    else:
        raise ValueError(f"method={method!r}: expected 'auto', 'bits' or 'fft'")
    out[y0:y0 + ch - h + 1, x0:x0 + cw - w + 1] = fits
    return out


def _column_runs(support: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """The footprint as vertical runs: (columns, first rows, lengths), column by column."""
    h, w = support.shape
    edges = np.zeros((w, h + 2), np.int8)
    edges[:, 1:-1] = support.T
    step = np.diff(edges, axis=1)
    xs, starts = np.nonzero(step == 1)
    ends = np.nonzero(step == -1)[1]
    return xs.tolist(), starts.tolist(), (ends - starts).tolist()


def _fits_bitwise(crop: np.ndarray, h: int, w: int, runs: tuple[list[int], ...]) -> np.ndarray:
    """(ch - h + 1, cw - w + 1) bool: offsets where every run of the footprint lies inside `crop`.

    A run (x, y, n) fits at (oy, ox) iff rows oy + y .. oy + y + n - 1 of column ox + x are all
    inside: one AND of the row-shifted n-row erosion per run, 64 offsets per machine word. Words
    start every 32 columns and hold 64, so any column shift is a word offset plus one right shift
    by < 32 whose low 32 bits are all valid: two vector operations per run.
    """
    ch, cw = crop.shape
    words, k = _pack_rows(crop, spare=1)  # the spare row: shifted reads stay inside the buffer
    eroded = _vertical_erosions(words, k, set(runs[2]))
    oh, ow = ch - h + 1, cw - w + 1
    n = oh * k
    acc = np.full(n, 0xFFFF_FFFF_FFFF_FFFF, "<u8")  # little-endian like the packed words: low half first
    tmp = np.empty(n, "<u8")
    for x, y, length in zip(*runs):
        q, r = divmod(x, 32)
        src = eroded[length][y * k + q:y * k + q + n]
        if r:
            src = np.right_shift(src, r, out=tmp)
        np.bitwise_and(acc, src, out=acc)
    # Keep each word's low half (its own 32 columns), then back to one byte per offset.
    low = np.ascontiguousarray(acc.view("<u4")[::2]).view(np.uint8).reshape(oh, 4 * k)
    return np.unpackbits(low, axis=1, count=ow, bitorder="little").view(bool)


def _pack_rows(crop: np.ndarray, spare: int) -> tuple[np.ndarray, int]:
    """Flat little-endian uint64 words, k per row: word (y, j) holds columns 32 j .. 32 j + 63, bit b
    column 32 j + b. `spare` all-zero rows follow the crop; columns past its width are zero (outside).
    """
    ch, cw = crop.shape
    k = -(-cw // 32)
    packed = np.zeros((ch + spare, 4 * (k + 1)), np.uint8)
    packed[:ch, :-(-cw // 8)] = np.packbits(crop, axis=1, bitorder="little")
    halves = packed.view("<u4")
    words = np.empty((ch + spare, k, 2), "<u4")
    words[..., 0], words[..., 1] = halves[:, :k], halves[:, 1:]
    return words.view("<u8").reshape(-1), k


def _vertical_erosions(words: np.ndarray, k: int, lengths: set[int]) -> dict[int, np.ndarray]:
    """{n: rows y .. y + n - 1 all inside, at row y} for every n in `lengths`, from power-of-two steps.

    Each result is k words shorter per extra row it reads, so no read leaves the buffer.
    """
    powers = {1: words}
    p = 1
    while 2 * p <= max(lengths):
        e = powers[p]
        powers[2 * p] = np.bitwise_and(e[:e.size - p * k], e[p * k:])
        p *= 2
    out = {}
    for n in lengths:
        p = 1 << (n.bit_length() - 1)
        e, d = powers[p], (n - p) * k
        out[n] = e if d == 0 else np.bitwise_and(e[:e.size - d], e[d:])
    return out


def _bits_cost(crop_hw: tuple[int, int], h: int, runs: tuple[list[int], ...]) -> float:
    """Rough microseconds of `_fits_bitwise`: per vector operation, a call cost plus a per-word cost."""
    ch, cw = crop_hw
    words = (ch + 1) * -(-cw // 32)
    ops = 2 * len(runs[0]) + len(set(runs[2])) + max(runs[2]).bit_length() + 8
    return ops * (1.0 + words * 3.3e-4)


def _fft_cost(crop_hw: tuple[int, int]) -> float:
    """Rough microseconds of `_correlate_outside` at this crop size."""
    size = _fast_len(crop_hw[0]) * _fast_len(crop_hw[1])
    return 40 + size * math.log2(size) * 6.5e-4


def _correlate_outside(inside: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Circular correlation of (inside == 0) with `support` at a fast FFT size >= inside's.

    Only rows [0, H - h] (the offsets that can be valid) are computed; the rest is stale.

    Offsets that keep the patch inside `inside` never wrap, so the padding is never read (it is
    zeroed anyway: stale values would add round-off). The FFT runs in reused per-thread buffers: fresh half-megabyte temporaries cost as much in
    page faults as the transforms themselves.
    """
    (ch, cw), (h, w) = inside.shape, support.shape
    size = (_fast_len(ch), _fast_len(cw))
    real_a, real_b, spec_a, spec_b, hits = _workspace(size)
    real_a.fill(0)
    np.equal(inside, 0, out=real_a[:ch, :cw])
    np.fft.rfft2(real_a, out=spec_a)
    # The support fills only its first h rows: transform those rows, then the columns.
    real_b[:h].fill(0)
    real_b[:h, :w] = support
    np.fft.rfft(real_b[:h], axis=1, out=spec_b[:h])
    spec_b[h:] = 0
    np.fft.fft(spec_b, axis=0, out=spec_b)
    np.multiply(spec_a, np.conjugate(spec_b, out=spec_b), out=spec_a)
    # Columns, then only the rows of valid offsets. (Not irfft2(out=...): numpy 2.4 returns wrong
    # values with `out` there.)
    np.fft.ifft(spec_a, axis=0, out=spec_a)
    rows = ch - h + 1
    np.fft.irfft(spec_a[:rows], n=size[1], axis=1, out=hits[:rows])
    return hits


_WS = threading.local()


def _workspace(size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """This thread's FFT buffers shaped for `size`: views into flat arrays that only ever grow.

    Crops differ in size from base to base; views of one allocation avoid fresh page faults on
    every call. The returned `hits` is overwritten by the next call.
    """
    m, n = size
    real, spec = m * n, m * (n // 2 + 1)
    flat = getattr(_WS, "flat", None)
    if flat is None or flat[0].size < real or flat[2].size < spec:
        grow = max(real, flat[0].size if flat else 0)
        grow_spec = max(spec, flat[2].size if flat else 0)
        flat = _WS.flat = (np.empty(grow), np.empty(grow), np.empty(grow_spec, complex),
                           np.empty(grow_spec, complex), np.empty(grow))
    return tuple(f[:k].reshape(m, -1) for f, k in zip(flat, (real, real, spec, spec, real)))


def _fast_len(n: int) -> int:
    """Smallest m >= n with no prime factor above 7 (pocketfft is slow on large prime sizes)."""
    m = n
    while True:
        k = m
        for p in (2, 3, 5, 7):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y, x, height, width) of the nonzero pixels of a uint8 mask; zero size when there are none."""
    import cv2

    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, np.uint8))
    return y, x, h, w
