"""Human review decisions as data: one CSV, `id,decision,criterion,reviewer,note,time`, appended and
fsynced on every click, so that nothing is lost if the browser, the server or the machine dies.

`id` is a sample id (healthy, lesion-mapped, semantic image) or a source id (an automatic mask).
Several reviewers may write to one file: per id, each reviewer's latest row counts; an id is
discarded when any reviewer's latest decision discards it (the paper kept an image only when both
reviewers kept it), and agreement between reviewers is Cohen's kappa over the ids both reviewed.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
import os
import threading
from collections import Counter
from itertools import combinations
from pathlib import Path

from builder.core.errors import ReviewError

FIELDS = ("id", "decision", "criterion", "reviewer", "note", "time")
DECISIONS = ("keep", "discard")
# The paper's four discard criteria, then the toolkit's two.
PAPER_CRITERIA = ("lesion_remains", "unrealistic_texture", "wrong_tone", "artefact")
CRITERIA = PAPER_CRITERIA + ("bad_mask", "other")
_append_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Decision:
    id: str
    decision: str
    criterion: str
    reviewer: str
    note: str
    time: str

    def row(self) -> list[str]:
        return [getattr(self, f) for f in FIELDS]


def check_decision(d: Decision) -> Decision:
    """`d`, or a ReviewError naming the bad field and the allowed values."""
    if not d.id or any(c in d.id for c in "/\\\n\r") or d.id in (".", ".."):
        raise ReviewError(f"decision id {d.id!r}: expected a sample id or a source id (no '/', '\\' or newline)")
    if d.decision not in DECISIONS:
        raise ReviewError(f"decision {d.decision!r} for {d.id}: expected one of {DECISIONS}")
    if d.decision == "discard" and d.criterion not in CRITERIA:
        raise ReviewError(f"criterion {d.criterion!r} for discarded {d.id}: expected one of {CRITERIA}")
    if d.decision == "keep" and d.criterion:
        raise ReviewError(f"criterion {d.criterion!r} for kept {d.id}: a kept item has no criterion")
    if not d.reviewer or "\n" in d.reviewer or "\r" in d.reviewer:
        raise ReviewError(f"reviewer {d.reviewer!r} for {d.id}: expected a name on one line")
    return d


def append_decision(path: str | os.PathLike, d: Decision) -> None:
    """Append one checked row (the header first if the file is new), flushed and fsynced before returning."""
    check_decision(d)
    path = Path(path)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with _append_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.is_file() or path.stat().st_size == 0
        if new:
            writer.writerow(FIELDS)
        writer.writerow(d.row())
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, buf.getvalue().encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # the file's name must survive a crash too
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def read_decisions(path: str | os.PathLike) -> list[Decision]:
    """Every row of a decisions file, in file order, each checked; a torn last line (a crash mid-write) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise ReviewError(f"decisions file {path} does not exist; write it with `python -m builder review "
                          "--version V --decisions FILE` or pass the file the review wrote")
    text = path.read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != FIELDS:
        raise ReviewError(f"{path}: the first line must be the header {','.join(FIELDS)}")
    torn = not text.endswith("\n")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if torn and n == len(rows):
            break
        if len(row) != len(FIELDS):
            raise ReviewError(f"{path} line {n}: {len(row)} fields, expected {len(FIELDS)} ({','.join(FIELDS)})")
        try:
            out.append(check_decision(Decision(*row)))
        except ReviewError as e:
            raise ReviewError(f"{path} line {n}: {e}") from None
    return out


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Decisions:
    """The latest decision per (id, reviewer), and what follows from them."""

    latest: dict[tuple[str, str], Decision]

    @classmethod
    def of(cls, rows: list[Decision]) -> "Decisions":
        latest = {}
        for d in rows:  # file order is time order: the later row wins
            latest[(d.id, d.reviewer)] = d
        return cls(latest)

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Decisions":
        return cls.of(read_decisions(path))

    @property
    def reviewers(self) -> list[str]:
        return sorted({r for _, r in self.latest})

    def of_id(self, item_id: str) -> list[Decision]:
        return [d for (i, _), d in sorted(self.latest.items()) if i == item_id]

    @property
    def ids(self) -> set[str]:
        return {i for i, _ in self.latest}

    def discarded(self) -> dict[str, str]:
        """id -> criterion of every id some reviewer's latest decision discards (criteria joined by '+')."""
        out: dict[str, set[str]] = {}
        for (i, _), d in self.latest.items():
            if d.decision == "discard":
                out.setdefault(i, set()).add(d.criterion)
        return {i: "+".join(sorted(c)) for i, c in sorted(out.items())}

    def disagreements(self) -> list[str]:
        """Ids whose reviewers' latest decisions differ (keep vs discard)."""
        by_id: dict[str, set[str]] = {}
        for (i, _), d in self.latest.items():
            by_id.setdefault(i, set()).add(d.decision)
        return sorted(i for i, ds in by_id.items() if len(ds) > 1)

    def summary(self, ids: set[str] | None = None) -> dict:
        """Reviewed, kept, discarded per criterion, reviewers and agreement, over `ids` (default: all)."""
        ids = self.ids if ids is None else self.ids & set(ids)
        discarded = {i: c for i, c in self.discarded().items() if i in ids}
        per = Counter(c for crit in discarded.values() for c in crit.split("+"))
        return {"reviewed": len(ids), "kept": len(ids) - len(discarded), "discarded": len(discarded),
                "discarded_by_criterion": dict(sorted(per.items())),
                "reviewers": sorted({r for i, r in self.latest if i in ids}),
                "disagreements": len([i for i in self.disagreements() if i in ids]),
                "agreement": self.agreement(ids)}

    def agreement(self, ids: set[str] | None = None) -> list[dict]:
        """Per pair of reviewers: the ids both decided, the share they agree on, and Cohen's kappa
        (scikit-learn's; None where it is undefined, e.g. both reviewers kept everything)."""
        from sklearn.metrics import cohen_kappa_score

        out = []
        for a, b in combinations(self.reviewers, 2):
            both = sorted(i for i in (self.ids if ids is None else ids)
                          if (i, a) in self.latest and (i, b) in self.latest)
            if not both:
                continue
            la = [self.latest[(i, a)].decision for i in both]
            lb = [self.latest[(i, b)].decision for i in both]
            agree = sum(x == y for x, y in zip(la, lb)) / len(both)
            kappa = None
            if len(set(la) | set(lb)) > 1:
                k = float(cohen_kappa_score(la, lb, labels=list(DECISIONS)))
                kappa = None if math.isnan(k) else round(k, 4)
            out.append({"reviewers": [a, b], "items": len(both), "agreement": round(agree, 4), "kappa": kappa})
        return out
