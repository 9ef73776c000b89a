"""The one stage contract: fingerprinted settings, shards split by rank, completion markers, one retry, worker pools.

Every stage that writes a `StageStore` in shards (healthy, lesion-mapped, semantic sampling) runs
through `run_shards`:

- its outputs are keyed by a `StageKey` (the stage's own settings, the fingerprints of its inputs:
  the source's (`builder.core.fingerprint.source_fingerprint`), upstream stages', the splits'; the
  toolkit version), pinned in `<store>/stage.json` by `pin`;
  a store made with another key is refused (a user's --out) or cleared and redone (the build's own
  work folder), and `pin` says which input changed (the `datasets` fingerprint model);
- shard i belongs to process `rank` of `world_size` iff i % world_size == rank, so the union of
  outputs is the same for any process count;
- a shard is done when its records file and its marker `markers/<shard>.json` exist and the
  marker carries the shard's fingerprint (stage key + the shard's own inputs); a killed run resumes;
- a shard that fails is retried once, then the run stops with "rerun the same command to resume".
"""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from builder.core.errors import BuildError, CgddiError, ConfigError
from builder.core.fingerprint import combine
from builder.core.progress import StageSummary, progress
from builder.core.schema import TOOLKIT_VERSION, Record, Rejection
from builder.core.store import StageStore, atomic_write, marker_matches, write_marker  # noqa: F401 (re-exported for steps)

log = logging.getLogger(__name__)

STAGE_FILE = "stage.json"
OUTPUT_DIRS = ("records", "markers")  # a folder holding either has outputs of some key


@dataclasses.dataclass(frozen=True)
class StageKey:
    """What a stage's outputs depend on: its settings, its inputs' fingerprints, the toolkit version."""

    stage: str
    settings: dict
    inputs: dict  # input name (source, healthy, splits, ...) -> that input's fingerprint
    toolkit_version: str = TOOLKIT_VERSION

    def to_json(self) -> dict:
        return {"stage": self.stage, "settings": self.settings, "inputs": dict(sorted(self.inputs.items())),
                "toolkit_version": self.toolkit_version}

    @property
    def fingerprint(self) -> str:
        return combine("stage", self.to_json())


def store_fingerprint(store: StageStore) -> str:
    """An input store's fingerprint: the one pinned in its stage.json, else a digest of its records; for a
    `ReviewedStore` with discards, combined with the discarded ids (decisions that drop nothing change nothing)."""
    path = store.root / STAGE_FILE
    if path.is_file():
        fp = json.loads(path.read_text())["fingerprint"]
    else:
        fp = combine("records", [r.to_json() for r in StageStore.records(store)])
    dropped = getattr(store, "dropped", None)  # a ReviewedStore: what review discarded is part of its content
    return combine(fp, "reviewed", sorted(dropped)) if dropped else fp


def changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of what differs between two keys (`settings.feather`, `inputs.source`, ...)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += changed(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def describe(key: StageKey, what: list[str]) -> str:
    """'lesion_map.feather', 'source', 'upstream healthy' for a list of changed key names."""
    names = []
    for w in what:
        head, _, rest = w.partition(".")
        names.append({"settings": f"{key.stage}.{rest}", "inputs": rest}.get(head, w))
    return ", ".join(names[:6]) + (f" (+{len(names) - 6} more)" if len(names) > 6 else "")


def pin(store: StageStore | os.PathLike, key: StageKey, *, on_change: str = "refuse") -> str:
    """Pin `key` in `<store>/stage.json`; returns 'new', 'reused' or 'rerun because X changed'.

    A store (a `StageStore` or any step's output folder) holding outputs of another key is refused
    (`on_change='refuse'`: a folder the user named, where mixing outputs would be silent corruption)
    or cleared (`'reset'`: the build's own work folder, where the step simply reruns).
    """
    root = Path(store.root if isinstance(store, StageStore) else store)
    path = root / STAGE_FILE
    body = {"fingerprint": key.fingerprint, "key": key.to_json()}
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("fingerprint") == key.fingerprint:
            return "reused"
        what = describe(key, changed(old.get("key", {}), key.to_json())) or "the key format"
    elif any((root / d).is_dir() and any((root / d).iterdir()) for d in OUTPUT_DIRS):
        what = "the stage key (none recorded)"
    else:
        what = None
    if what is not None:
        if on_change != "reset":
            raise ConfigError(f"{root} holds {key.stage} outputs made with other settings or inputs "
                              f"({what} changed; see {path}): rerun with the same settings to resume, "
                              "or use a new --out")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
    return "new" if what is None else f"rerun because {what} changed"


class Step:
    """One step of a build (source, masks, ingest, splits, healthy, lesion map, semantic, curation,
    publish): `check` runs for every enabled step before any step does work, then `run` reads the
    build's context and adds its outputs to it. A step that writes a store keys it with a `StageKey`
    (`pin`) and, where it has shards, runs them through `run_shards` (rank sharding, markers, retry).

    `name` is the step's one spelling (logs, manifests, `stage.json`; the CLI writes `_` as `-`);
    `kind` is the row kind its store holds, if any."""

    name: str = ""
    kind: str | None = None

    def enabled(self, cfg) -> bool:
        return True

    def check(self, cfg, device: str) -> None:
        """Refuse bad settings before any work (no photo read, no model loaded)."""

    def run(self, ctx) -> None:
        raise NotImplementedError(f"step {self.name!r} has no run")


@dataclasses.dataclass(frozen=True)
class Shard:
    """A fixed slice of a stage's work: its name, its items, and the ids its outputs depend on."""

    name: str
    items: list
    ids: tuple = ()

    def fingerprint(self, stage_fingerprint: str) -> str:
        return combine("shard", stage_fingerprint, self.name, list(self.ids))


def check_slot(rank: int, world_size: int, shard_size: int = 1) -> None:
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank} must be in [0, world_size={world_size})")
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size} must be >= 1")


def mine(shards: Sequence[Shard], rank: int, world_size: int) -> list[Shard]:
    """Shard i is this process's iff i % world_size == rank."""
    return [s for i, s in enumerate(shards) if i % world_size == rank]


Work = Callable[[Shard, Any, Callable[[], None]], "tuple[list[Record], list[Rejection]]"]


def outcome(pinned: str, summary: StageSummary) -> str:
    """The log word for a stage run: new, reused (nothing redone), resumed, or rerun because X changed."""
    if pinned == "reused":
        return "resumed" if summary.done or sum(summary.rejected.values()) else "reused"
    return pinned


def run_shards(store: StageStore, key: StageKey, shards: Sequence[Shard], work: Work, *, rank: int = 0,
               world_size: int = 1, setup: Callable[[list[Shard]], Any] | None = None,
               attempts: int = 2, unit: str = "img") -> StageSummary:
    """Run this process's unfinished shards: `work(shard, ctx, tick)` returns its (records, rejections).

    `setup(todo)` (e.g. loading a model) runs once, only when there is work; `tick()` advances the
    one progress bar by an item. The store must be pinned to `key` first (`pin`).
    """
    check_slot(rank, world_size)
    summary = StageSummary(key.stage)
    stage_fp = key.fingerprint
    todo = []
    for shard in mine(shards, rank, world_size):
        if store.shard_done(shard.name, shard.fingerprint(stage_fp)):
            summary.skipped += len(shard.items)
        else:
            todo.append(shard)
    if todo:
        ctx = setup(todo) if setup else None
        bar = iter(progress(range(sum(len(s.items) for s in todo)), desc=f"{key.stage}[{rank}]", unit=unit))

        def tick() -> None:
            next(bar, None)

        for shard in todo:
            records, rejections = _retrying(store, key.stage, shard, work, ctx, tick, attempts)
            store.finish_shard(shard.name, records, rejections, fingerprint=shard.fingerprint(stage_fp))
            summary.done += len(records)
            for r in rejections:
                summary.reject(r.reason)
    return summary.stop()


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _retrying(store: StageStore, stage: str, shard: Shard, work: Work, ctx, tick, attempts: int):
    """A failed shard is retried once, then reported; finished shards stay, so a rerun resumes."""
    for attempt in range(1, attempts + 1):
        try:
            return work(shard, ctx, tick)
        except CgddiError:
            raise
        except OSError as e:
            if e.errno in _ENVIRONMENT_ERRNOS:  # disk full, read-only, no permission: retrying cannot help,
                raise                            # and the CLI names the path and the fix in one line
            _note_failure(store, stage, shard, attempt, attempts, e)
        except Exception as e:  # noqa: BLE001 (any failure of a shard gets the same treatment)
            _note_failure(store, stage, shard, attempt, attempts, e)
    raise AssertionError("unreachable")


def _note_failure(store: StageStore, stage: str, shard: Shard, attempt: int, attempts: int, e: Exception) -> None:
    """Log a failed attempt; after the last one, stop with "rerun the same command to resume"."""
    log.warning("%s %s failed (attempt %d of %d): %r", stage, shard.name, attempt, attempts, e)
    if attempt == attempts:
        raise BuildError(f"{stage} {shard.name} of {store.root} failed {attempts} times, last with "
                         f"{e!r}; finished shards are kept: fix the cause and rerun the same command "
                         "to resume") from e


def run_ranks(fn: Callable[..., StageSummary], workers: int, stage: str, *args, **kwargs) -> StageSummary:
    """`fn(*args, rank=r, world_size=workers, **kwargs)` for every rank, in `workers` processes; one summary
    (its wall time spans all ranks)."""
    summary = StageSummary(stage)
    if workers <= 1:
        parts = [fn(*args, rank=0, world_size=1, **kwargs)]
    else:
        from builder.core.workers import worker_pool  # Ctrl-C and a dead parent end the workers

        with worker_pool(workers) as pool:
            futures = [pool.submit(fn, *args, rank=r, world_size=workers, **kwargs) for r in range(workers)]
            parts = [f.result() for f in futures]
    for part in parts:
        summary.done += part.done
        summary.skipped += part.skipped
        summary.rejected.update(part.rejected)
    return summary.stop()



def worker_count(workers: int | None, jobs: int) -> int:
    """`workers` (None or 0: all cores), never more than there are jobs, at least 1."""
    return max(1, min(workers or os.cpu_count() or 1, jobs))
