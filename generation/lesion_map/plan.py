"""Lesion-map plans: deterministic (base, donor) pairs balanced over base tone x donor disease x donor tone."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import numpy as np

from builder.core.directions import allowed_directions
from builder.core.directions import source_of as prefix
from builder.core.errors import ConfigError
from builder.core.schema import SKIN_TONES, SPLITS, Record, sample_seed

if TYPE_CHECKING:
    import polars

log = logging.getLogger(__name__)

PLAN_COLUMNS = ("row", "base_id", "base_skin_tone", "base_source_ids", "donor_id", "donor_skin_tone",
                "donor_source_ids", "disease", "disease_raw", "malignant", "seed", "base_auto_mask", "donor_auto_mask")


PAIRINGS = ("balanced", "all")


def make_plan(bases: list[Record], donors: list[Record], budget: int | None, seed: int,
              split_of: dict[str, str] | None = None, pairing: str = "balanced",
              cross_source: str = "any") -> "polars.DataFrame":
    """Deterministic (base, donor) pairs; with `split_of` (source id -> split) only within one split.

    `pairing='all'` (the paper): every base x every donor once, across splits (each row takes the
    most held-out split of its sources); a `budget` then samples that many pairs without replacement.

    Pairing across splits would put a train base and a test donor into one image, which the
    leakage rule then has to hold out: pairing within a split keeps every image usable where
    its sources are. The budget is apportioned to splits by their share of bases.

    `cross_source` (several sources in one build; a source is a record's id prefix, `ddi`, `fitz17k`):
    `any` pairs regardless of source; `within` only a base and a donor of one source; `across` only
    of two sources, both ways; `A->B` only lesions of source A onto bases of source B. Other than
    `any`, each allowed direction (donor source, base source) is planned on its own, as the paper's
    cross-dataset tables count them, with an equal share of a `balanced` budget.
    """
    import polars as pl

    if cross_source != "any":
        return _by_direction(bases, donors, budget, seed, split_of, pairing, cross_source)
    if pairing == "all":
        return all_pairs(bases, donors, budget, seed, split_of)
    if not split_of:
        return _plan_one(bases, donors, budget, seed).with_columns(pl.lit(None, pl.String).alias("split"))
    _check(bases, donors, budget)
    split = split_key(split_of)
    groups = sorted({split(b) for b in bases} & {split(d) for d in donors}, key=SPLITS.index)
    sizes = {g: sum(split(b) == g for b in bases) for g in groups}
    parts, start = [], 0
    for g, n in _apportion(budget, sizes).items():
        part = _plan_one([b for b in bases if split(b) == g], [d for d in donors if split(d) == g], n,
                         sample_seed(g, seed))
        parts.append(part.with_columns(pl.col("row") + start, pl.lit(g).alias("split")))
        start += n
    return pl.concat(parts) if parts else _plan_one([], [], 0, seed).with_columns(pl.lit(None, pl.String).alias("split"))



def all_pairs(bases: list[Record], donors: list[Record], budget: int | None, seed: int,
              split_of: dict[str, str] | None = None) -> "polars.DataFrame":
    """Every (base, donor) pair once, ordered by (base id, donor id); a budget keeps a seeded sample of
    that many pairs (without replacement, in the same order). Rows are numbered after sampling."""
    import polars as pl

    _check(bases, donors, budget, allow_all=True)
    bases = sorted(bases, key=lambda r: r.sample_id)
    donors = sorted(donors, key=lambda r: r.sample_id)
    total = len(bases) * len(donors)
    keep = range(total) if budget is None or budget >= total else \
        sorted(np.random.default_rng(seed).choice(total, size=budget, replace=False).tolist())
    split = split_key(split_of)
    rows = []
    for row, k in enumerate(keep):
        base, donor = bases[k // len(donors)], donors[k % len(donors)]
        rows.append({**_plan_row(row, base, donor, seed),
                     "split": max(split(base), split(donor), key=SPLITS.index) if split_of else None})
    return pl.DataFrame(rows, schema={**_plan_schema(), "split": pl.String}).select([*PLAN_COLUMNS, "split"])


def source_of(r: Record) -> str:
    """A record's source: the id prefix of its first real source (`ddi:000012` -> `ddi`)."""
    return prefix(r.source_ids[0]) if r.source_ids else ""


def _by_direction(bases: list[Record], donors: list[Record], budget: int | None, seed: int,
                  split_of: dict[str, str] | None, pairing: str, cross_source: str) -> "polars.DataFrame":
    """One plan per allowed (donor source, base source) direction, rows numbered on across directions."""
    import polars as pl

    sources = sorted({source_of(r) for r in (*bases, *donors)})
    directions = [(d, b) for d, b in allowed_directions(cross_source, sources)
                  if any(source_of(r) == b for r in bases) and any(source_of(r) == d for r in donors)]
    if not directions:
        log.warning("lesion_map.cross_source=%s: no direction has both bases and donors among sources %s",
                    cross_source, sources)
        return make_plan([], [], 0, seed, split_of, pairing)
    count = lambda d, b: sum(source_of(r) == b for r in bases) * sum(source_of(r) == d for r in donors)  # noqa: E731
    # balanced: an equal share each; all: a budget is shared by the directions' numbers of pairs
    shares = {f"{d}->{b}": None for d, b in directions} if budget is None else \
        _apportion(budget, {f"{d}->{b}": 1 if pairing == "balanced" else count(d, b) for d, b in directions})
    parts, start = [], 0
    for d, b in directions:
        name = f"{d}->{b}"
        part = make_plan([r for r in bases if source_of(r) == b], [r for r in donors if source_of(r) == d],
                         shares.get(name, 0), sample_seed(name, seed), split_of, pairing)
        parts.append(part.with_columns(pl.col("row") + start))
        start += part.height
    return pl.concat(parts)


def split_key(split_of: dict[str, str] | None) -> Callable[[Record], str | None]:
    """A record's split as plans use it: the most held-out split of its sources (None: no splits)."""
    if not split_of:
        return lambda r: None
    return lambda r: max((split_of.get(s, "train") for s in r.source_ids), key=SPLITS.index)


def _plan_schema() -> dict:
    import polars as pl

    flags = ("malignant", "base_auto_mask", "donor_auto_mask")
    return {"row": pl.Int64, "seed": pl.Int64, **{c: pl.Boolean for c in flags},
            **{c: pl.String for c in PLAN_COLUMNS if c not in ("row", "seed", *flags)}}


def _apportion(budget: int, sizes: dict[str, int]) -> dict[str, int]:
    """Largest-remainder split of `budget` proportional to `sizes` (deterministic)."""
    total = sum(sizes.values())
    if not total:
        return {}
    exact = {g: budget * n / total for g, n in sizes.items()}
    out = {g: int(v) for g, v in exact.items()}
    for g in sorted(exact, key=lambda g: (out[g] - exact[g], g))[:budget - sum(out.values())]:
        out[g] += 1
    return out


def _plan_one(bases: list[Record], donors: list[Record], budget: int, seed: int) -> "polars.DataFrame":
    """Deterministic (base, donor) pairs balanced over base tone x donor disease x donor tone.

    Every cell (base tone, disease, donor tone) that the inputs can fill gets the same number of
    rows (+-1), so a disease with one donor gets as many images per cell as melanoma: rare diseases
    are included by construction. Within each round the cells are ordered to cover every disease
    first, then balance base and donor tones, so even a budget smaller than the cell count is as
    balanced as it can be. Bases and donors are used round-robin in a seeded order; a base made
    from the donor's own photo is skipped when another base of that tone exists.
    """
    import polars as pl

    _check(bases, donors, budget)
    rng = np.random.default_rng(seed)
    base_pools = _pools(bases, lambda r: r.skin_tone, rng)
    donor_pools = _pools(donors, lambda r: (r.disease, r.skin_tone), rng)
    missing = [t for t in SKIN_TONES if t not in base_pools]
    if missing:
        log.warning("no bases of skin tone %s: the plan cannot cover them", ", ".join(missing))
    cells = [(bt, dis, dt) for bt in sorted(base_pools) for (dis, dt) in sorted(donor_pools)]
    order = _round_order(cells, rng)
    base_next = {k: 0 for k in base_pools}
    donor_next = {k: 0 for k in donor_pools}
    rows = []
    for row in range(budget):
        bt, dis, dt = cells[order[row % len(cells)]]
        donor = _take(donor_pools[(dis, dt)], donor_next, (dis, dt))
        base = _take(base_pools[bt], base_next, bt, avoid=set(donor.source_ids))
        rows.append(_plan_row(row, base, donor, seed))
    return pl.DataFrame(rows, schema=_plan_schema()).select(PLAN_COLUMNS)


def _check(bases: list[Record], donors: list[Record], budget: int | None, allow_all: bool = False) -> None:
    if budget is None and allow_all:
        budget = len(bases) * len(donors)
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 0:
        raise ConfigError(f"lesion_map budget={budget!r} must be a non-negative integer (images to make)"
                          + ("" if allow_all else "; null (every pair) needs lesion_map.pairing: all"))
    if budget and not bases:
        raise ConfigError("no bases to plan over: pass a store of healthy synthetics (kind 'healthy')")
    if budget and not donors:
        raise ConfigError("no donors to plan over: pass a store of real images (kind 'real') with lesion masks")


def _pools(records: list[Record], key, rng: np.random.Generator) -> dict:
    """Records grouped by `key`, each group in a seeded order (input sorted by id first: order-proof)."""
    groups: dict = {}
    for r in sorted(records, key=lambda r: r.sample_id):
        groups.setdefault(key(r), []).append(r)
    return {k: [g[i] for i in rng.permutation(len(g))] for k, g in sorted(groups.items())}


def _round_order(cells: list[tuple[str, str, str]], rng: np.random.Generator) -> list[int]:
    """One round over all cells, greedily: least-used disease, then base tone, then donor tone."""
    counts = {"dis": {}, "bt": {}, "dt": {}}
    tiebreak = rng.permutation(len(cells))
    left = set(range(len(cells)))
    order = []
    while left:
        def key(i: int) -> tuple:
            bt, dis, dt = cells[i]
            return (counts["dis"].get(dis, 0), counts["bt"].get(bt, 0), counts["dt"].get(dt, 0), tiebreak[i])

        best = min(left, key=key)
        left.remove(best)
        order.append(best)
        bt, dis, dt = cells[best]
        for name, value in (("dis", dis), ("bt", bt), ("dt", dt)):
            counts[name][value] = counts[name].get(value, 0) + 1
    return order


def _take(pool: list[Record], cursor: dict, key, avoid: set[str] = frozenset()) -> Record:
    """Next record of a round-robin pool, skipping ones that share a real source with `avoid`."""
    for _ in range(len(pool)):
        rec = pool[cursor[key] % len(pool)]
        cursor[key] += 1
        if not avoid.intersection(rec.source_ids):
            return rec
    return rec  # every candidate shares the source: keep the last rather than drop the cell


def _plan_row(row: int, base: Record, donor: Record, seed: int) -> dict:
    return {
        "row": row, "base_id": base.sample_id, "base_skin_tone": base.skin_tone,
        "base_source_ids": ";".join(sorted(base.source_ids)), "donor_id": donor.sample_id,
        "donor_skin_tone": donor.skin_tone, "donor_source_ids": ";".join(sorted(donor.source_ids)),
        "disease": donor.disease, "disease_raw": donor.disease_raw, "malignant": bool(donor.malignant),
        "seed": sample_seed(f"lesion_map:{row}:{base.sample_id}:{donor.sample_id}", seed),
        "base_auto_mask": bool(base.auto_masks), "donor_auto_mask": bool(donor.auto_masks),
    }


def plan_summary(plan: "polars.DataFrame") -> str:
    """A short inspectable view: rows per base tone x donor tone, and the spread over cells."""
    import polars as pl

    if plan.height == 0:
        return "plan: 0 rows"
    tones = plan.group_by("base_skin_tone", "donor_skin_tone").len().sort("base_skin_tone", "donor_skin_tone")
    cells = plan.group_by("base_skin_tone", "disease", "donor_skin_tone").len()
    lines = [f"plan: {plan.height} rows, {plan['disease'].n_unique()} diseases, {cells.height} cells "
             f"(base tone x disease x donor tone), {cells['len'].min()}-{cells['len'].max()} rows per cell, "
             f"{plan['base_id'].n_unique()} bases, {plan['donor_id'].n_unique()} donors"]
    lines += [f"  base {r['base_skin_tone']:>6} <- donor {r['donor_skin_tone']:>6}: {r['len']}"
              for r in tones.iter_rows(named=True)]
    lines.append(f"  malignant: {plan.filter(pl.col('malignant')).height}, "
                 f"benign: {plan.filter(~pl.col('malignant')).height}")
    auto_b = plan.filter(pl.col("base_auto_mask"))["base_id"].n_unique()
    auto_d = plan.filter(pl.col("donor_auto_mask"))["donor_id"].n_unique()
    lines.append(f"  from automatic masks: {auto_b} of {plan['base_id'].n_unique()} bases, "
                 f"{auto_d} of {plan['donor_id'].n_unique()} donors "
                 f"({plan.filter(pl.col('base_auto_mask') | pl.col('donor_auto_mask')).height} rows)")
    return "\n".join(lines)


def plan_delivery(plan: "polars.DataFrame", records: list[Record]) -> dict:
    """Delivered / planned per (base tone, disease, donor tone) cell of a plan, from the mapped records.

    A row counts in the cell it was planned for (another base keeps the tone, so the cell too);
    `placement` counts how the delivered rows were placed (builder.core.schema.PLACEMENTS).
    """
    got = {r.plan_row for r in records if r.plan_row is not None}
    cells: dict[tuple, list[int]] = {}
    for row in plan.iter_rows(named=True):
        c = cells.setdefault((row["base_skin_tone"], row["disease"], row["donor_skin_tone"]), [0, 0])
        c[0] += 1
        c[1] += row["row"] in got
    placements: dict[str, int] = {}
    for r in records:
        placements[r.placement or "fit"] = placements.get(r.placement or "fit", 0) + 1
    order = lambda k: (SKIN_TONES.index(k[0]), k[1], SKIN_TONES.index(k[2]))  # noqa: E731
    return {"planned": plan.height, "delivered": sum(d for _, d in cells.values()),
            "placement": dict(sorted(placements.items())),
            "cells": [{"base_skin_tone": bt, "disease": dis, "donor_skin_tone": dt, "planned": p, "delivered": d}
                      for (bt, dis, dt), (p, d) in sorted(cells.items(), key=lambda kv: order(kv[0]))]}


def delivery_summary(delivery: dict, limit: int = 12) -> str:
    """A few lines: delivered / planned overall, cells filled, and the cells short of their plan."""
    cells = delivery["cells"]
    short = [c for c in cells if c["delivered"] < c["planned"]]
    planned = delivery["planned"]
    lines = [f"lesion maps delivered {delivery['delivered']} / {planned} planned"
             f" ({delivery['delivered'] / planned:.1%})" if planned else "lesion maps: none planned",
             f"  cells (base tone x disease x donor tone) filled as planned: {len(cells) - len(short)} / {len(cells)}",
             "  placement: " + ", ".join(f"{k} {v}" for k, v in delivery["placement"].items())]
    lines += [f"  short: {c['disease']} (base {c['base_skin_tone']} <- donor {c['donor_skin_tone']}) "
              f"{c['delivered']}/{c['planned']}" for c in short[:limit]]
    if len(short) > limit:
        lines.append(f"  ... and {len(short) - limit} more short cells")
    return "\n".join(lines)
