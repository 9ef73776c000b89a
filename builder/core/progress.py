"""One progress helper (tqdm, switchable off) and the one-line stage summary every stage returns."""
from __future__ import annotations

import collections
import dataclasses
import logging
import os
import sys
import time
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

_ENABLED = os.environ.get("CGDDI_PROGRESS", "1") != "0"


def set_progress(enabled: bool) -> None:
    """Switch every progress bar on or off (the CLI's --quiet)."""
    global _ENABLED
    _ENABLED = enabled


def progress_enabled() -> bool:
    return _ENABLED


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "img") -> Iterator[T]:
    """Iterate with a progress bar on stderr when enabled and attached to a terminal or forced on."""
    if not _ENABLED:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False,
                    dynamic_ncols=True, mininterval=0.5)


@dataclasses.dataclass
class StageSummary:
    """Counts per stage and per rejection reason, plus wall time."""

    stage: str
    done: int = 0
    skipped: int = 0  # finished by an earlier run (resume)
    rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    seconds: float = 0.0
    status: str = ""  # what the stage's fingerprint said: new, reused, rerun because X changed
    _t0: float = dataclasses.field(default_factory=time.perf_counter, repr=False)

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def stop(self) -> "StageSummary":
        self.seconds = time.perf_counter() - self._t0
        return self

    def line(self) -> str:
        rej = ", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none"
        status = f"; {self.status}" if self.status else ""
        return (f"[{self.stage}] done={self.done} skipped={self.skipped} "
                f"rejected={sum(self.rejected.values())} ({rej}) in {self.seconds:.1f}s{status}")

    def to_json(self) -> dict:
        return {"stage": self.stage, "done": self.done, "skipped": self.skipped,
                "rejected": dict(sorted(self.rejected.items())), "seconds": round(self.seconds, 3)}
