"""Feature sets of `builder evaluate` on disk: written a batch at a time, read back a chunk at a time.

A feature set (one float64 row per image, an `.npy` file in the evaluation cache) is loaded into memory
only while it is small (`IN_MEMORY_BYTES`); a larger one stays in its file as `OnDisk` rows, and the
statistics read it in chunks: Frechet statistics from running float64 sums, KID from the rows its
subsets draw, a bootstrap resample as a vector of row indices. The figures are those of the in-memory
computation up to float64 summation order (same draws, same formulas), so memory no longer grows with
the version's row count and feature width.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from builder.core.heap import release

IN_MEMORY_BYTES = 64 * 2 ** 20  # a feature set up to this size is computed on in memory, as before
CHUNK_BYTES = 8 * 2 ** 20       # rows read per step when a set is scanned


def write(path: Path, batches, n: int) -> None:
    """Stream float64 row batches into an `.npy` file of `n` rows (written beside it, renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    rows = 0
    with open(tmp, "wb") as f:
        for b in batches:
            b = np.ascontiguousarray(b, dtype="<f8").reshape(len(b), -1)
            if rows == 0:
                np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                        "shape": (n, b.shape[1])})
            f.write(b.tobytes())
            rows += len(b)
        if rows == 0:
            np.lib.format.write_array(f, np.zeros((0, 1)))
    if rows != n:
        tmp.unlink()
        raise ValueError(f"{path.name}: {rows} feature rows written, {n} expected")
    os.replace(tmp, path)
    release()  # the batches' decoded images are freed: hand their pages back (core.heap)


def load(path: Path) -> "np.ndarray | OnDisk":
    """The feature set in `path`: an array while it is small, else its rows on disk."""
    rows = OnDisk(path)
    return np.load(path) if rows.nbytes <= IN_MEMORY_BYTES else rows


class OnDisk:
    """Rows of a float64 `.npy` file, selected by index (repeats allowed: a bootstrap resample), read on demand.

    Indexing with an integer array selects rows (of this selection), as a numpy array does; `np.asarray`
    reads the selected rows (meant for small selections, e.g. KID subsets)."""

    def __init__(self, path: Path, index: np.ndarray | None = None, header: tuple | None = None):
        self.path = Path(path)
        if header is None:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(f)
                if fortran or np.dtype(dtype) != np.dtype("<f8") or len(shape) != 2:
                    raise ValueError(f"{self.path}: expected a C-ordered float64 matrix, got {dtype} {shape}")
                header = (tuple(shape), f.tell())
        self.header, self.index = header, index

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.header[0][1])

    @property
    def nbytes(self) -> int:
        return self.header[0][0] * self.header[0][1] * 8

    def __len__(self) -> int:
        return self.header[0][0] if self.index is None else len(self.index)

    def __getitem__(self, idx) -> "OnDisk":
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return OnDisk(self.path, idx if self.index is None else self.index[idx], self.header)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self.rows()
        return rows if dtype is None else rows.astype(dtype)

    def counts(self) -> np.ndarray | None:
        """How many times each file row is selected (None: every row once)."""
        return None if self.index is None else np.bincount(self.index, minlength=self.header[0][0])

    def chunks(self):
        """(rows, weights) over the file in order: each selected row once, weighted by its selection count."""
        (n, d), offset = self.header
        step = max(1, CHUNK_BYTES // (8 * d))
        counts = self.counts()
        with open(self.path, "rb") as f:
            for s in range(0, n, step):
                e = min(n, s + step)
                w = np.ones(e - s) if counts is None else counts[s:e].astype(np.float64)
                if counts is not None and not w.any():
                    continue
                f.seek(offset + 8 * d * s)
                x = np.fromfile(f, dtype="<f8", count=(e - s) * d).reshape(e - s, d)
                keep = w > 0
                yield x[keep], w[keep]

    def rows(self) -> np.ndarray:
        """The selected rows, in selection order, read row by row (sparse) or by a scan (dense)."""
        (n, d), offset = self.header
        index = np.arange(n) if self.index is None else self.index
        uniq, inverse = np.unique(index, return_inverse=True)
        out = np.empty((len(uniq), d))
        if len(uniq) * 8 < n:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                for k, r in enumerate(uniq):
                    out[k] = np.frombuffer(os.pread(fd, 8 * d, offset + 8 * d * int(r)), dtype="<f8")
            finally:
                os.close(fd)
        else:
            whole = OnDisk(self.path, uniq, self.header)
            at = 0
            for x, _ in whole.chunks():
                out[at:at + len(x)] = x
                at += len(x)
        return out[inverse.reshape(-1)]

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(rows, mean, covariance with divisor rows - 1) in two passes: np.cov of the selected rows."""
        n = len(self)
        total = sum((w[:, None] * x).sum(0) for x, w in self.chunks())
        mean = total / n
        scatter = sum((x - mean).T @ ((x - mean) * w[:, None]) for x, w in self.chunks())
        return n, mean, scatter / (n - 1)

    def sums(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(rows, sum of rows, sum of x x^T): the running sums torchmetrics' FID keeps."""
        d = self.header[0][1]
        total, outer = np.zeros(d), np.zeros((d, d))
        for x, w in self.chunks():
            total += (w[:, None] * x).sum(0)
            outer += (x * w[:, None]).T @ x
        return len(self), total, outer
