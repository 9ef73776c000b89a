"""Holdouts chosen at export time: a seeded fold over the source table, or a test-id file.

A chosen holdout replaces the build's own test set: every synthetic row, whatever its build split,
is placed again from its lineage (`source_ids`). The rule is strict: a row is on the test side when
any of its source ids is held out (its base photo, a donor lesion, a semantic model's training
photo), so no train row has seen a test photo in any role. The counts also say what a laxer rule
would have kept (the row's base photo alone deciding, as a split by base photo does), so the cost
of strictness is visible.

Tone holdouts are PatchAlign24's `a12` / `a34` / `a56` (`train = df[fitzpatrick in the pair]`,
`test` = the rest): every photo of another tone group is held out, and a photo whose tone is not
known is held out too (it cannot be shown to belong to the training tone).

Folds use the same call as PatchAlign24's DDI holdout (`curation.splits.holdout_test_ids`):
`train_test_split(rows, test_size=0.2, random_state=seed)` over the source table in its file
order; the paper's five folds are seeds 36-40 (`PAPER_FOLD_SEEDS`).
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from builder.core.errors import ExportError

PAPER_FOLD_SEEDS = (36, 37, 38, 39, 40)
# PatchAlign24's out-of-domain holdouts: train on one tone group, test on the others.
TONE_HOLDOUTS = {"a12": "light", "a34": "medium", "a56": "dark"}


@dataclasses.dataclass
class Holdout:
    name: str           # what the export's report and TRAINING.md call it
    held: set[str]      # held-out source ids
    chosen: bool        # True: replaces the build's test set; False: the build's own test set
    counts: Counter = dataclasses.field(default_factory=Counter)

    def side(self, sources: list[str]) -> str:
        """`test` when any source id is held out (strict rule), else `train`; counts both rules."""
        strict = bool(set(sources) & self.held)
        base = bool(sources) and sources[0] in self.held
        self.counts["test_by_lineage" if strict else "train_by_lineage"] += 1
        if strict and not base:
            self.counts["kept_by_base_rule_only"] += 1  # a test photo is a donor or model source here
        return "test" if strict else "train"

    def describe(self) -> dict:
        return {"name": self.name, "held_out_sources": len(self.held), "replaces_build_test_set": self.chosen,
                "rule": "strict" if self.chosen else "build", **dict(sorted(self.counts.items()))}


def seeded_fold(real: Path, prefix: str, seed: int) -> Holdout:
    """The fold `train_test_split(rows, test_size=0.2, random_state=seed)` over `real`'s table."""
    from curation.source.metadata import find_table
    from curation.splits import holdout_test_ids

    if not 0 <= seed < 2**32:
        raise ExportError(f"--holdout-seed {seed}: expected a non-negative integer below 2**32 "
                          f"(the paper's folds: {', '.join(map(str, PAPER_FOLD_SEEDS))})")
    _, table = find_table(Path(real))
    return Holdout(f"seed {seed} (train_test_split(test_size=0.2, random_state={seed}) over {table.name})",
                   set(holdout_test_ids(table, prefix, seed=seed)), chosen=True)


def id_file(test_ids: set[str], every: set[str], folder: Path) -> Holdout:
    """The test ids of a file, checked against the version's source ids (a file for another source
    would hold out nothing and pass silently)."""
    from builder.core.splits_file import check_test_ids

    check_test_ids(test_ids, every, where=str(folder), hint="pass the build's splits.csv or its test ids")
    return Holdout(f"test-id file ({len(test_ids)} ids)", set(test_ids), chosen=True)


def tone_holdout(name: str, tones: dict[str, str], every: set[str]) -> Holdout:
    """PatchAlign24's `name` (a12, a34, a56): every source photo not of that tone group is test.
    `tones`: source id -> tone name, for the photos whose tone is known."""
    if name not in TONE_HOLDOUTS:
        raise ExportError(f"--tone-holdout {name!r}: expected one of {', '.join(TONE_HOLDOUTS)} "
                          "(PatchAlign24's out-of-domain holdouts: train on types 1-2, 3-4 or 5-6)")
    keep = TONE_HOLDOUTS[name]
    held = {s for s in every if tones.get(s) != keep}
    unknown = sum(1 for s in every if s not in tones)
    h = Holdout(f"tone holdout {name} (train on {keep} skin, test on the other tone groups; evaluate with "
                f"holdout_set='{name}' and only the test groups in type_indices)", held, chosen=True)
    h.counts["sources_of_unknown_tone_held_out"] = unknown
    return h
