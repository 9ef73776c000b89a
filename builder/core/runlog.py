"""The run log: one JSON line per run in `<work>/runs.jsonl` with what the run did (done, skipped, seconds
per stage), who ran it and how; the manifest holds only content, so these live here."""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)
FILE = "runs.jsonl"


class RunLog:
    """Context manager: set `.stages` during the run; on exit (also on failure) one line is appended."""

    def __init__(self, work: str | os.PathLike, holder: dict | None = None, options=None):
        self.work = Path(work)
        self.holder = dict(holder or {})
        self.options = _plain(options)
        self.stages: list[dict] = []

    def __enter__(self) -> "RunLog":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        entry = {**self.holder, "options": self.options, "stages": self.stages,
                 "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 "seconds": round(time.perf_counter() - self._t0, 3),
                 "status": "ok" if exc is None else f"failed: {type(exc).__name__}: {exc}"}
        try:
            self.work.mkdir(parents=True, exist_ok=True)
            with open(self.work / FILE, "a") as f:
                f.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
        except OSError as e:  # the log must never hide the run's own result or error
            log.warning("could not append to %s: %s", self.work / FILE, e)


def read_runs(work: str | os.PathLike) -> list[dict]:
    """Every logged run of a work folder, oldest first."""
    path = Path(work) / FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def _plain(options) -> dict:
    if options is None:
        return {}
    d = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options)
    return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in d.items()}
