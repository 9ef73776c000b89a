"""Holdouts chosen at export time: a seeded fold over the source table, or a test-id file.

A chosen holdout replaces the build's own test set: every synthetic row, whatever its build split,
is placed again from its lineage (`source_ids`), as is every row when the export's rule is not the one
the version was built with. Under the strict rule a row is on the test side when any of its source ids
is held out (its base photo, a donor lesion, a semantic model's training photo), so no train row has
seen a test photo in any role. Under the paper's rule only the sources `builder.published.rules` names
decide (a lesion map's donor; a semantic image's healthy prompt, when made from a photo of its own
disease). The counts give the rows on each side under both rules, and what a laxer rule would have
kept (the row's base photo alone deciding, as a split by base photo does).

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
    rule: str = "strict"  # strict | paper (curation.leakage.RULES)
    relineage: bool = False  # the build's own test set, rows placed again (the export's rule is not the build's)
    by_rule: dict = dataclasses.field(default_factory=lambda: {"strict": Counter(), "paper": Counter()})

    @property
    def by_lineage(self) -> bool:
        """Rows are placed from their lineage (else they keep the build's split)."""
        return self.chosen or self.relineage

    def side(self, sources: list[str], deciding: list[str] | None = None) -> str:
        """`test` when a deciding source id is held out under `rule` (strict: any of `sources`; paper: any of
        `deciding`, the sources the paper's rule names; None: `sources`), else `train`; counts both rules."""
        strict = bool(set(sources) & self.held)
        paper = bool(set(sources if deciding is None else deciding) & self.held)
        applied = paper if self.rule == "paper" else strict
        base = bool(sources) and sources[0] in self.held
        self.counts["test_by_lineage" if applied else "train_by_lineage"] += 1
        self.by_rule["strict"]["test" if strict else "train"] += 1
        self.by_rule["paper"]["test" if paper else "train"] += 1
        if strict and not base:
            self.counts["kept_by_base_rule_only"] += 1  # a test photo is a donor or model source here
        return "test" if applied else "train"

    def describe(self) -> dict:
        by_rule = {r: dict(sorted(c.items())) for r, c in self.by_rule.items()} if self.by_lineage else None
        return {"name": self.name, "held_out_sources": len(self.held), "replaces_build_test_set": self.chosen,
                "rule": self.rule, "placed_by": "lineage" if self.by_lineage else "build split",
                "rows_by_rule": by_rule, **dict(sorted(self.counts.items()))}


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
