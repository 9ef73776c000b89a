"""Keeping a long streaming run's resident memory at its working set.

A command that decodes images a batch at a time (`builder evaluate` over a large version) frees as much
as it allocates, yet its resident memory can still grow with the row count: the memory is freed but
not returned to the system. Two allocators keep it:

- glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
  batch-sized buffers come from the heap, and heap pages freed between live ones stay resident. A fixed
  threshold (`MMAP_THRESHOLD`, 4 MiB) keeps every buffer above it in a mapping of its own, unmapped when
  freed; `release` asks malloc to return free heap pages (`malloc_trim`). Why 4 MiB: glibc's own 128 KiB
  also maps each decoded image, and a fresh mapping is paid in page faults: decoding and resizing 1,200
  demo images took 9.0 CPU s at 128 KiB, 7.0 at 1 MiB, 6.7 at 4 MiB, 6.0 with glibc's defaults; a 10k-row
  evaluation peaked at 688 MiB with 4 MiB, 780 with `malloc_trim` alone (measured 2026-12-07, shared
  2-core machine).
- pyarrow's default pool (mimalloc or jemalloc) keeps freed pages for reuse; while `bounded_heap` is
  active, pyarrow allocates from the system allocator instead (the one above), and the previous pool is
  restored after.

Measured with `python benchmarks/evaluate_scale.py` (README, "Scale"). Both are process settings: the
glibc threshold stays fixed after the run (glibc offers no way back to its dynamic threshold), which
only changes where large buffers come from. Elsewhere than glibc these are no-ops.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools

ENABLED = True               # False: allocator defaults (the evaluate benchmark's baseline)
MMAP_THRESHOLD = 4 * 2 ** 20   # a buffer this large or larger is a mapping of its own (see below)
_M_MMAP_THRESHOLD = -3       # mallopt parameter number (malloc.h)


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc's libc with mallopt and malloc_trim, or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def release() -> None:
    """Return freed memory to the system: malloc's free heap pages and pyarrow's pool's unused pages."""
    if not ENABLED:
        return
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
    try:
        import pyarrow as pa
    except ImportError:
        return
    pa.default_memory_pool().release_unused()


@contextlib.contextmanager
def bounded_heap():
    """For the duration: pyarrow on the system allocator; from the start: glibc's fixed mmap threshold.
    Freed memory is returned when the block ends."""
    if not ENABLED:
        yield
        return
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    try:
        import pyarrow as pa
    except ImportError:
        pa = None
    before = pa.default_memory_pool() if pa is not None else None
    if pa is not None:
        pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        if pa is not None:
            pa.set_memory_pool(before)
        release()
