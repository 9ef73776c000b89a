"""Train/validation/test splits over real source images: grouped by lineage, stratified, seeded.

Everything sharing a lineage root lands in one split: roots are connected components over the
records' `source_ids`, joined further by known patient ids and by extra links (near-duplicate
pairs). Methods (`curation.split_method`):

- `stratified`: inside each (source x) skin tone x malignancy stratum, groups (largest first, then by a
  seeded hash of the root id) go where the stratum's quota is least filled; the result depends
  only on ids, seed and ratios.
- `test_ids`: the ids in a file (one per line, or a CSV with a `source_id` column) form test, with
  their whole groups; the rest is split stratified into train/validation.
- `patchalign24`: PatchAlign24's DDI holdout, `train_test_split(df, test_size=0.2,
  random_state=12140420)` over the source's metadata table in its published row order (or
  PatchAlign24's own CSV), decided on the table before any image is read (`holdout_test_ids`):
  a row rejected at ingest leaves test, it never moves another image. The rest as `test_ids`.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from builder.core.config import CurationConfig
from builder.core.errors import ConfigError
from builder.core.schema import SPLITS, Record
from builder.core.splits_file import check_test_ids, read_test_ids

log = logging.getLogger(__name__)
METHODS = ("stratified", "test_ids", "patchalign24")
PATCHALIGN_SEED, PATCHALIGN_TEST_SIZE = 12140420, 0.2


def check_ratios(ratios: dict) -> dict[str, float]:
    if set(ratios) != set(SPLITS) or any(v < 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise ConfigError(f"curation.ratios={ratios!r}: need non-negative train/validation/test summing to 1")
    return {k: float(ratios[k]) for k in SPLITS}


def assign_splits(real: list[Record], cfg: CurationConfig, *, links: Iterable[tuple[str, str]] = (),
                  test_ids: Iterable[str] | None = None, missing_ok: bool = False) -> dict[str, str]:
    """source_id -> split for every source id of `real`, whole lineage groups together.

    `links` are extra (source_id, source_id) pairs that must share a split (near-duplicates);
    `test_ids` overrides the configured test-ids file. `missing_ok`: test ids that were not
    ingested (rows rejected at ingest, from a holdout decided on the table) are skipped, not errors.
    """
    ratios = check_ratios(dict(cfg.ratios))
    method = cfg.split_method
    if method not in METHODS:
        raise ConfigError(f"curation.split_method={method!r}: expected one of {', '.join(METHODS)}")
    root = lineage_roots(real, links)
    if test_ids is None and method == "test_ids":
        if not cfg.test_ids_file:
            raise ConfigError("curation.split_method=test_ids needs curation.test_ids_file (or --test-ids FILE)")
        test_ids = read_test_ids(cfg.test_ids_file)
    if test_ids is None and method == "patchalign24":
        log.warning("split_method=patchalign24 without the source table: holdout computed over the %d "
                    "ingested images, so a rejected row shifts it; pass the table (holdout_test_ids)", len(real))
        test_ids = patchalign24_test_ids(real, cfg.patchalign24_csv)
    if test_ids is None:
        return _stratified(real, root, ratios, cfg.split_seed)
    test_ids = set(test_ids)
    if missing_ok:
        gone = sorted(test_ids - set(root))
        if gone:
            log.info("%d holdout test ids were not ingested (rejected rows), they stay out: %s", len(gone), gone[:5])
        test_ids -= set(gone)
    return _with_fixed_test(real, root, test_ids, ratios, cfg.split_seed)


def lineage_roots(records: list[Record], links: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """source_id -> its group's root (the smallest id of the connected component)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # smallest id is the root: order-free

    by_patient: dict[str, str] = {}
    for r in records:
        for s in r.source_ids:
            union(r.source_ids[0], s)
        patient = r.patient_id
        if patient:
            union(by_patient.setdefault(patient, r.source_ids[0]), r.source_ids[0])
    for a, b in links:
        union(a, b)
    return {s: find(s) for s in sorted(parent)}


def _groups(real: list[Record], root: dict[str, str]) -> dict[str, list[Record]]:
    groups: dict[str, list[Record]] = defaultdict(list)
    for r in real:
        groups[root[r.source_ids[0]]].append(r)
    return groups


def _stratum(members: list[Record]) -> tuple[str, str, bool]:
    """A group's stratum: its most common (source, tone, malignant); ties by sort order (deterministic).
    The source (the id prefix) stratifies a build over several sources, so each gets its own ratios; with
    one source it is the same for every group and changes nothing."""
    counts = Counter((r.source_ids[0].split(":", 1)[0], r.skin_tone, bool(r.malignant)) for r in members)
    return min(counts, key=lambda k: (-counts[k], k))


def _stratified(real: list[Record], root: dict[str, str], ratios: dict[str, float], seed: int) -> dict[str, str]:
    strata: dict[tuple, list[tuple[str, int]]] = defaultdict(list)
    for g, members in _groups(real, root).items():
        strata[_stratum(members)].append((g, len(members)))
    group_split: dict[str, str] = {}
    for key in sorted(strata):
        # Big groups first, singletons last: the singletons then fill each quota exactly.
        groups = sorted(strata[key], key=lambda gs: (-gs[1], _rank(seed, gs[0])))
        need = _counts(sum(n for _, n in groups), ratios)
        for g, n in groups:
            # The split with the most unfilled quota; ties to the held-out side (test first).
            split = max(("test", "validation", "train"), key=lambda s: need[s])
            group_split[g] = split
            need[split] -= n
    return {s: group_split[r] for s, r in root.items() if r in group_split}


def _with_fixed_test(real, root, test_ids: set[str], ratios, seed: int) -> dict[str, str]:
    check_test_ids(test_ids, root, where="the ingested real images", every=True,
                   hint="check the ingest rejections for them, or remove them from the test-ids file")
    test_roots = {root[s] for s in test_ids}
    pulled = sorted(s for s, r in root.items() if r in test_roots and s not in test_ids)
    if pulled:
        log.info("%d source ids join test with their lineage group: %s", len(pulled), pulled[:5])
    rest = [r for r in real if root[r.source_ids[0]] not in test_roots]
    tv = ratios["train"] + ratios["validation"]
    sub = {"train": ratios["train"] / tv if tv else 1.0, "validation": ratios["validation"] / tv if tv else 0.0,
           "test": 0.0}
    out = _stratified(rest, {s: root[s] for r in rest for s in r.source_ids}, sub, seed)
    out.update({s: "test" for s, r in root.items() if r in test_roots})
    return dict(sorted(out.items()))


def patchalign24_test_ids(real: list[Record], csv_path: str | Path | None = None) -> list[str]:
    """PatchAlign24's DDI test set: sklearn's `train_test_split(df, test_size=0.2, random_state=12140420)`.

    Row order is that of PatchAlign24's CSV (its `hasher` column holds file names) when given,
    else the published DDI order (by DDI file number). The split depends only on the row count,
    so it reproduces theirs exactly when the rows are the same.
    """
    ids = sorted({s for r in real for s in r.source_ids})
    if csv_path:
        ids = _patchalign_order(Path(csv_path), ids)
    return sorted(_sklearn_test(ids))


def holdout_test_ids(table: str | Path, source_name: str, order_csv: str | Path | None = None,
                     seed: int = PATCHALIGN_SEED) -> list[str]:
    """PatchAlign24's DDI test set decided on a metadata table alone, before any image is read.

    sklearn's `train_test_split(rows, test_size=0.2, random_state=12140420)` over the rows of
    `table` in file order (DDI's `ddi_metadata.csv` as published; a Fitzpatrick17k table by
    `md5hash`), or over PatchAlign24's own CSV (`order_csv`, its `hasher` column) when given.
    Ids are `<source_name>:<file stem>`, as ingest names them. The result depends on the table
    only: a row later rejected at ingest simply has no image, and no other row changes split.
    The table is read by the strict reader (non-UTF-8 bytes are a one-line error naming the file).
    `seed`: the same call with another `random_state` (PatchAlign24's five folds use 36-40).
    """
    from curation.source.metadata import read_csv_strings, table_stems

    path = Path(order_csv or table)
    if not path.is_file():
        raise ConfigError(f"holdout table {path} does not exist; pass the source folder holding ddi_metadata.csv"
                          + (" (curation.patchalign24_csv)" if order_csv else ""))
    stems = table_stems(read_csv_strings(path))
    if not stems:
        raise ConfigError(f"{path}: no DDI_file, md5hash or hasher column to name the holdout's images; "
                          "expected DDI's ddi_metadata.csv (or PatchAlign24's CSV)")
    return stems_holdout(stems, source_name, seed)


def stems_holdout(stems: Sequence[str], source_name: str, seed: int = PATCHALIGN_SEED) -> list[str]:
    """PatchAlign24's holdout over image stems in table order, as `<source_name>:<stem>` ids."""
    return sorted(f"{source_name}:{s}" for s in _sklearn_test(list(stems), seed) if s)


def table_holdout(cfg: CurationConfig, source, source_name: str | None = None) -> list[str] | None:
    """The test ids of a holdout decided on the source's metadata table (None for other split methods).

    `source`: the table already read (`read_source_table`, whose ids it names as ingest does), or a
    source folder. Ids are named `source_name`, else the layout (`ddi`, `fitz17k`). Several sources in
    one table (`merge_tables`): each source's own holdout, drawn on its own table, and their union."""
    if cfg.split_method != "patchalign24":
        return None
    from curation.source.metadata import SourceTable, find_table

    if isinstance(source, SourceTable) and source.parts:
        return sorted(s for part in source.parts for s in table_holdout(_for_part(cfg, part), part))
    if isinstance(source, SourceTable):
        if cfg.patchalign24_csv:
            return holdout_test_ids(source.table, source.name, cfg.patchalign24_csv)
        if not source.id_stems:
            raise ConfigError(f"{source.table}: no DDI_file, md5hash or hasher column to name the holdout's "
                              "images; expected DDI's ddi_metadata.csv (or PatchAlign24's CSV)")
        return stems_holdout(source.id_stems, source.name)
    layout, table = find_table(Path(source))
    return holdout_test_ids(table, source_name or layout, cfg.patchalign24_csv)


def _for_part(cfg: CurationConfig, part) -> CurationConfig:
    """The holdout settings of one source of several: PatchAlign24's CSV orders DDI's rows only, so a
    source of another layout draws the same call over its own table in its own order."""
    import dataclasses

    return cfg if part.layout == "ddi" else dataclasses.replace(cfg, patchalign24_csv=None)


def _sklearn_test(items: list[str], seed: int = PATCHALIGN_SEED) -> list[str]:
    try:
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ConfigError("curation.split_method=patchalign24 needs scikit-learn: "
                          "pip install scikit-learn (a dependency of cgddi-toolkit)") from e
    _, test = train_test_split(items, test_size=PATCHALIGN_TEST_SIZE, random_state=seed)
    return list(test)


def _patchalign_order(csv_path: Path, ids: list[str]) -> list[str]:
    if not csv_path.is_file():
        raise ConfigError(f"curation.patchalign24_csv={csv_path} does not exist")
    from curation.source.metadata import read_csv_strings

    df = read_csv_strings(csv_path)
    if "hasher" not in df.columns:
        raise ConfigError(f"{csv_path}: no 'hasher' column; expected PatchAlign24's DDI CSV")
    by_stem = {s.split(":", 1)[1]: s for s in ids}
    order, missing = [], []
    for h in df["hasher"].to_list():
        stem = Path(h or "").stem
        (order.append(by_stem[stem]) if stem in by_stem else missing.append(h))
    if missing:
        raise ConfigError(f"{csv_path}: {len(missing)} rows name images not ingested (e.g. {missing[:3]}); "
                          "the holdout would differ from PatchAlign24's. Ingest the same DDI images.")
    return order


def _rank(seed: int, source_id: str) -> str:
    return hashlib.blake2b(f"{seed}:{source_id}".encode(), digest_size=8).hexdigest()


def _counts(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Largest-remainder apportionment of n items; ties broken in SPLITS order."""
    exact = {k: n * v for k, v in ratios.items()}
    counts = {k: int(v) for k, v in exact.items()}
    left = n - sum(counts.values())
    for k in sorted(SPLITS, key=lambda k: (-(exact[k] - counts[k]), SPLITS.index(k)))[:left]:
        counts[k] += 1
    return counts


def split_table(real: list[Record], split_of: dict[str, str]) -> dict[str, dict[str, int]]:
    """Counts per split x (tone, malignancy), for summaries and tests."""
    out: dict[str, dict[str, int]] = {s: Counter() for s in SPLITS}
    for r in real:
        out[split_of[r.source_ids[0]]][f"{r.skin_tone}/{'malignant' if r.malignant else 'benign'}"] += 1
    return {s: dict(sorted(c.items())) for s, c in out.items()}
