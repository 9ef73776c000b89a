"""Trainer exports of a version built over several sources (`build --source A --source B`).

The DDI layout writes every row, each in DDI's three tone groups: a DDI photo's `skin_tone` 12/34/56 as
it is, a Fitzpatrick17k photo's type 1-2 / 3-4 / 5-6 as 12 / 34 / 56 (the published `skin_tone`
column, which every row has), so each trainer's grouping (`builder.published.trainers`) puts both
sources' rows in the same three groups. The Fitzpatrick17k layout needs a type 1-6 on every row: a row
built on a DDI photo has a tone group only, so a version whose rows mix the two is refused unless
`--sources` keeps the rows of typed sources (or `--layout ddi` groups them all). `--sources A[,B]` keeps
the rows whose whole lineage (`source_ids`: base, donor, training photos) lies in the named sources.

`--real DIR` names one source's folder: its photos carry that source's name (the version's source of
the same layout), and its held-out photos are drawn by that source's own rule (DDI: PatchAlign24's
holdout, with their CSV's order when the build had it; Fitzpatrick17k: the same call over its own
table). A holdout chosen over that table (`--holdout-seed`) replaces that source's holdout only: the
other sources keep the build's.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from builder.core.directions import source_of
from builder.core.errors import ExportError


def version_sources(folder: Path) -> list[dict]:
    """The manifest's sources (name, layout, table, ...), one entry per `--source`; [] for one source."""
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    return list((manifest.get("source") or {}).get("sources") or [])


def lineage(source_ids) -> str:
    """The sources a row derives from, joined: `ddi`, `fitz17k`, `ddi+fitz17k`."""
    return "+".join(sorted({source_of(s) for s in source_ids or ()}))


def check_sources(chosen: tuple[str, ...] | None, entries: list[dict], folder: Path) -> None:
    """`--sources` names sources of the version (a version of one source has no choice to make)."""
    if chosen is None:
        return
    names = [e["name"] for e in entries]
    if len(names) < 2:
        raise ExportError(f"--sources {','.join(chosen)}: {folder} was built from one source; leave --sources out")
    unknown = [s for s in chosen if s not in names]
    if unknown or not chosen:
        raise ExportError(f"--sources {','.join(chosen)}: {unknown or 'nothing'} is not among the version's "
                          f"sources ({', '.join(names)}); pass some of those, comma-separated")


def kept(source_ids, chosen: tuple[str, ...] | None) -> bool:
    """Whether a row's whole lineage lies in the chosen sources (every row when none are chosen)."""
    return chosen is None or {source_of(s) for s in source_ids or ()} <= set(chosen)


def real_source(folder: Path, real: Path, entries: list[dict], fallback: str) -> tuple[str, str | None]:
    """(source name, layout) of the `--real` folder among the version's sources: the one of its layout;
    one source: (`fallback`, None), the version's own prefix as before."""
    if len(entries) < 2:
        return fallback, None
    from curation.source.metadata import find_table

    layout, table = find_table(Path(real))
    same = [e for e in entries if e["layout"] == layout]
    if len(same) > 1:
        same = [e for e in same if e.get("table") == table.name] if len({e.get("table") for e in same}) > 1 else same
    if len(same) != 1:
        names = ", ".join(f"{e['name']} ({e['layout']})" for e in entries)
        raise ExportError(f"--real {real}: a {layout}-layout folder, and the version's sources are {names}: "
                          f"{'none' if not same else 'more than one'} of them matches it; export without --real "
                          "(each source's test synthetics are then the test side)")
    return same[0]["name"], layout


def source_holdout(real: Path, name: str, layout: str, order_csv: str | None) -> set[str]:
    """The holdout the build drew for this source: PatchAlign24's call over its own table (their CSV's
    order for a DDI-layout source only, as `curation.splits.table_holdout` draws each source's)."""
    from curation.source.metadata import find_table
    from curation.splits import holdout_test_ids

    return set(holdout_test_ids(find_table(Path(real))[1], name, order_csv if layout == "ddi" else None))


def keep_other_sources(holdout, build_held: set[str], name: str) -> None:
    """A holdout drawn over source `name`'s table replaces that source's test set only: every other
    source's photos the build held out stay held out (a row from them is test under the strict rule)."""
    others = {s for s in build_held if source_of(s) != name}
    holdout.held |= others
    holdout.name += f"; the other sources keep the build's holdout ({len(others)} photos)"


def check_types(rows: list[dict], entries: list[dict]) -> None:
    """The Fitzpatrick17k layout over several sources: refuse rows that derive from a DDI-layout photo and
    have no type 1-6 (semantic rows carry no type in any build: they are left out and counted, as for one
    source)."""
    if len(entries) < 2:
        return
    tone_only = {e["name"] for e in entries if e["layout"] == "ddi"}
    untyped = Counter(lineage(r["_sources"]) for r in rows
                      if r.get("_type") is None and {source_of(s) for s in r["_sources"]} & tone_only)
    if untyped:
        typed = [e["name"] for e in entries if e["layout"] != "ddi"]
        raise ExportError(f"--layout fitzpatrick17k: {sum(untyped.values())} rows ({dict(sorted(untyped.items()))}) "
                          "have a DDI tone group (12/34/56) but no Fitzpatrick type 1-6 and cannot be written "
                          f"beside typed rows; pass --sources {','.join(typed) or 'NAME'} (rows of those sources "
                          "only) or --layout ddi (every row in DDI's tone groups)")


def training_note(rows: list[dict], entries: list[dict], layout: str) -> str:
    """TRAINING.md's paragraph on the sources of the rows (empty for one source)."""
    if len(entries) < 2:
        return ""
    counts = Counter(lineage(r["_sources"]) for r in rows)
    each = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
    tones = ("each row's `skin_tone` is DDI's group: a DDI photo's 12/34/56 as DDI labels it, a Fitzpatrick17k "
             "photo's type 1-2 / 3-4 / 5-6 as 12 / 34 / 56, so the trainer's three tone groups hold both sources"
             if layout == "ddi" else "every row carries the Fitzpatrick type 1-6 of the photo it was built on "
             "(semantic rows have none and are left out)")
    return (f"\n## Sources\n\nThis version was built from {len(entries)} sources "
            f"({', '.join(e['name'] for e in entries)}); rows by the sources of their lineage: {each}. "
            f"Skin tone: {tones}.\n")
