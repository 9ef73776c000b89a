"""One progress helper (tqdm on a terminal only, switchable), quiet output for -q, and the one-line stage summary."""
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


def _forced_from_env() -> bool | None:
    """CGDDI_PROGRESS=1 forces bars on, 0 off; unset: bars only when stderr is a terminal."""
    value = os.environ.get("CGDDI_PROGRESS", "")
    return True if value == "1" else False if value == "0" else None


_FORCED = _forced_from_env()
_QUIET = False  # the CLI's -q: only errors and each command's final summary
# -q reaches worker processes (forkserver pools) through the environment: they log errors only.
if os.environ.get("CGDDI_QUIET", "") == "1":
    logging.getLogger().setLevel(logging.ERROR)


def set_progress(enabled: bool | None) -> None:
    """Force every progress bar on (True) or off (False, the CLI's --quiet); None: on a terminal only."""
    global _FORCED
    _FORCED = enabled


def progress_enabled() -> bool:
    """Bars on a terminal only: a log file or a pipe gets the summary lines, not bar redraws."""
    if _FORCED is not None:
        return _FORCED
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def say(*lines: str) -> None:
    """Print a command's details (tables, per-step lines) to stdout unless -q; final summaries use print()."""
    if not _QUIET:
        for line in lines:
            print(line)


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "img") -> Iterator[T]:
    """Iterate with a progress bar on stderr when stderr is a terminal (or CGDDI_PROGRESS=1), else plainly."""
    if not progress_enabled():
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
