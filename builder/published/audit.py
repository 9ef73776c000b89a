"""Leakage audit of a published version, from the data alone: lineage, duplicates, integrity, balance.

What counts as leakage (docs/method.md, "The leakage rules"): under the strict rule, a train/validation
row derived from a test source image (a healthy synthetic of it, a lesion-mapped image whose base or donor
is it, a semantic synthetic from a model that saw it); under the paper's rule (a version that states it,
or `--rule paper`), only the sources that rule names (`builder.published.rules`); and under both, exact or
near duplicates (pHash) across splits.
Test sources come from `--test-ids` when given, else from the data: the split of every
single-source row (a real image or its healthy synthetic) fixes its source's split.
Integrity: every file against manifest.json (sha256, bytes, rows), the Parquet schema against
`builder.core.schema.arrow_schema()`, the card's split sizes against the rows, per-kind configs against
`all`. Any failure makes `AuditReport.ok` false (the CLI exits 1).
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import logging
import os
import re
from pathlib import Path
from typing import Iterator

from builder.core.errors import IntegrityProblem, PublishError
from builder.core.layout import is_file_name, is_relative_file_path
from builder.core.progress import progress
from builder.published.balance import balance_tables, format_balance  # noqa: F401 (the CLI imports it from here)
from builder.published.mask_check import mask_problem
from builder.published.files import (open_shard, read_card_yaml, read_manifest_or_report, read_shard_rows,
                                     served_files, walk_files)
from builder.core.schema import KINDS, SKIN_TONES
from builder.core.splits_file import check_test_ids

log = logging.getLogger(__name__)

SHARD_RE = re.compile(r"^data/(?P<config>[^/]+)/(?P<split>[a-z]+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.parquet$")
LINEAGE_COLUMNS = ["sample_id", "kind", "split", "skin_tone", "malignant", "disease",
                   "source_ids", "base_id", "donor_id", "parent_id", "params"]
MAX_ITEMS = 1000  # leak items listed in the JSON report (counts are always complete)


@dataclasses.dataclass
class RowInfo:
    """What the audit keeps per row: lineage and two image fingerprints (never the pixels)."""

    sample_id: str
    kind: str
    split: str
    skin_tone: str
    malignant: bool
    disease: str
    source_ids: list[str]
    base_id: str | None
    donor_id: str | None
    sha256: str
    phash: int
    facts: dict = dataclasses.field(default_factory=dict)  # what the paper's rule reads (published.rules)


@dataclasses.dataclass
class AuditReport:
    target: str
    version: str | None = None
    rows: int = 0
    phash_hamming: int = 6
    test_ids_source: str = "inferred"
    test_ids: int = 0
    rule: str = "strict"  # the leakage rule checked (published.rules)
    derivation_pairs: int = 0  # near-duplicate pairs across splits that share a source id
    leaks: list[dict] = dataclasses.field(default_factory=list)
    integrity: list[dict] = dataclasses.field(default_factory=list)
    balance: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.leaks and not self.integrity

    def leaked_ids(self) -> set[str]:
        return {item["sample_id"] for item in self.leaks}

    def to_json(self) -> dict:
        by_reason = collections.Counter(item["reason"] for item in self.leaks)
        return {"target": self.target, "version": self.version, "ok": self.ok, "rows": self.rows,
                "rule": self.rule,
                "phash_hamming": self.phash_hamming, "near_duplicate_derivation_pairs": self.derivation_pairs,
                "test_ids": {"source": self.test_ids_source, "count": self.test_ids},
                "leakage": {"rows": len(self.leaked_ids()), "by_reason": dict(sorted(by_reason.items())),
                            "items": self.leaks[:MAX_ITEMS]},
                "integrity": {"ok": not self.integrity, "problems": self.integrity},
                "balance": self.balance}


# -- 1. integrity ---------------------------------------------------------------------------
def check_manifest(folder: Path, report: AuditReport) -> list[str]:
    """Every manifest file present with its sha256/bytes, and no file of the folder (or repo) that the
    manifest does not list: an extra Parquet file matched by the card's globs is served by
    `load_dataset`. Returns the good shard paths."""
    from builder.published.push import KEEP_REMOTE, manifest_files, sha256_file

    mpath = folder / "manifest.json"
    if not mpath.is_file():
        report.integrity.append({"problem": "missing_manifest", "path": "manifest.json",
                                 "detail": "no manifest.json: not a built version folder"})
        return sorted(str(p.relative_to(folder)) for p in folder.glob("data/*/*.parquet"))
    manifest = read_manifest_or_report(folder, report)
    if manifest is None:
        return sorted(str(p.relative_to(folder)) for p in folder.glob("data/*/*.parquet"))
    report.version = str(manifest.get("version"))
    try:
        files = {f["path"]: f for f in manifest_files(manifest)}
    except (PublishError, KeyError, TypeError, AttributeError) as e:
        report.integrity.append({"problem": "unreadable_manifest", "path": "manifest.json",
                                 "detail": f"no usable `files` list ({str(e)[:150]})"})
        files = {}
    good = []
    walked, problems = walk_files(folder)
    report.integrity += [p.to_json() for p in problems]
    for path, f in sorted(files.items()):
        p = folder / str(path)
        if not is_relative_file_path(path):
            report.integrity.append({"problem": "path_outside_folder", "path": str(path),
                                     "detail": "manifest.json lists a path that is not a plain relative path "
                                               "inside the folder"})
        elif not p.is_file():
            report.integrity.append({"problem": "missing_file", "path": path, "detail": "listed in manifest"})
        elif p.stat().st_size != f.get("bytes") or sha256_file(p) != f.get("sha256"):
            report.integrity.append({"problem": "sha256_mismatch", "path": path,
                                     "detail": "file differs from manifest.json (tampered or corrupted)"})
        elif SHARD_RE.match(path):
            good.append(path)
    for rel in walked:
        if rel not in files and rel != "manifest.json" and rel not in KEEP_REMOTE:
            report.integrity.append({"problem": "unlisted_file", "path": rel,
                                     "detail": "not in manifest.json (load_dataset serves it if the card's "
                                               "data_files match it); remove it or rebuild the version"})
    return good


def served(folder: Path, report: AuditReport) -> dict[str, str]:
    """path -> split of every file `load_dataset` would read (`files.served_files`); a folder with a
    linked folder is not resolved (`datasets` would follow the link, perhaps round a loop)."""
    if any(p["problem"] == "linked_folder" for p in report.integrity):
        return {}
    try:
        return served_files(folder)
    except IntegrityProblem as e:
        report.integrity.append(e.to_json())
        return {}


def check_schema(folder: Path, path: str, expected_rows: int | None, report: AuditReport) -> bool:
    """The shard's Arrow schema and `huggingface` metadata match the published schema."""
    from builder.core.schema import arrow_schema

    try:
        pf = open_shard(folder, path)  # size limits checked before anything is decompressed
        meta, schema = pf.metadata, pf.schema_arrow
    except IntegrityProblem as e:  # a truncated or overwritten file: report, keep auditing the rest
        report.integrity.append(e.to_json())
        return False
    except Exception as e:  # noqa: BLE001 (a footer pyarrow cannot turn into a schema)
        report.integrity.append({"problem": "unreadable_parquet", "path": path, "detail": str(e)[:200]})
        return False
    want = arrow_schema()
    if not schema.remove_metadata().equals(want.remove_metadata()):
        report.integrity.append({"problem": "schema_mismatch", "path": path,
                                 "detail": f"columns {schema.names} differ from the published schema"})
        return False
    if b"huggingface" not in (schema.metadata or {}):
        report.integrity.append({"problem": "missing_hf_metadata", "path": path,
                                 "detail": "no `huggingface` schema metadata (features would not decode)"})
    if expected_rows is not None and meta.num_rows != expected_rows:
        report.integrity.append({"problem": "row_count_mismatch", "path": path,
                                 "detail": f"{meta.num_rows} rows, manifest says {expected_rows}"})
    return True


def collect_shards(folder: Path) -> list[str]:
    """Every shard path of the Hub layout under `folder`, sorted."""
    paths = (str(p.relative_to(folder)) for p in folder.glob("data/*/*.parquet"))
    return sorted(p for p in paths if SHARD_RE.match(p))


# -- 2. reading rows ------------------------------------------------------------------------
def iter_rows(folder: Path, paths: list[str], served: dict[str, str] | None = None
              ) -> Iterator[tuple[str, dict, bytes]]:
    """(file split, lineage row, image bytes), one row group at a time (bounded memory). A file's split
    is in its shard name, or (a file only the card's globs serve) in `served`."""
    for path in paths:
        m = SHARD_RE.match(path)
        split = (served or {}).get(path) or (m.group("split") if m else "unknown")
        for row, img in read_shard_rows(folder, path, LINEAGE_COLUMNS + ["mask"]):  # the mask: checked, not kept
            yield split, row, img


def fingerprint(sample_id: str, row: dict, image: bytes) -> RowInfo:
    import imagehash
    from PIL import Image

    from builder.published.rules import row_facts

    with Image.open(io.BytesIO(image)) as im:
        ph = imagehash.phash(im.convert("RGB"))
    kind = KINDS[row["kind"]]
    return RowInfo(sample_id=sample_id, kind=kind, split=row["split"],
                   skin_tone=SKIN_TONES[row["skin_tone"]], malignant=bool(row["malignant"]),
                   disease=row["disease"], source_ids=list(row["source_ids"] or []),
                   base_id=row["base_id"], donor_id=row["donor_id"],
                   sha256=hashlib.sha256(image).hexdigest(), phash=int(str(ph), 16),
                   facts=row_facts(kind, row) if kind in ("lesion_mapped", "semantic") else {})


def _fingerprint_shard(folder: Path, path: str, served: dict[str, str] | None = None
                       ) -> list[tuple[str, RowInfo | dict]]:
    """(file split, fingerprint) of every row of one shard (a unit of work for a worker process); a row
    or file that cannot be read gives (split, problem dict) instead, never an exception."""
    out = []
    try:
        for split, row, img in iter_rows(folder, [path], served):
            if not is_file_name(row["sample_id"]):
                out.append((split, {"problem": "unsafe_sample_id", "path": path,
                                    "detail": f"sample_id {row['sample_id']!r} cannot name a file (a path, or "
                                              "unsafe characters): an export would write outside its folder"}))
                continue
            try:
                out.append((split, fingerprint(row["sample_id"], row, img)))
            except Exception as e:  # noqa: BLE001 (PIL raises many types for bytes that are not an image)
                out.append((split, {"problem": "bad_image", "path": path,
                                    "detail": f"row {row['sample_id']!r}: not a decodable image ({str(e)[:120]})"}))
                continue
            problem = mask_problem(row, img)
            if problem:
                out.append((split, {"problem": "bad_mask", "path": path,
                                    "detail": f"row {row['sample_id']!r}: {problem}"}))
    except IntegrityProblem as e:
        out.append(("", e.to_json()))
    return out


def _fingerprints(folder: Path, shards: list[str], workers: int | None,
                  served: dict[str, str] | None = None) -> Iterator[tuple[str, RowInfo]]:
    """Shard by shard, in order; decoding + pHash (~10 ms an image) spread over `workers` processes."""
    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(shards) < 2:
        for path in shards:
            yield from _fingerprint_shard(folder, path, served)
        return
    from builder.core.workers import worker_pool

    with worker_pool(min(workers, len(shards))) as pool:
        for rows in pool.map(_fingerprint_shard, [folder] * len(shards), shards, [served] * len(shards)):
            yield from rows


def collect_rows(folder: Path, shards: list[str], report: AuditReport, workers: int = 1,
                 served: dict[str, str] | None = None) -> list[RowInfo]:
    """Fingerprint the `all` config (or every config, deduplicated by sample_id when there is none)."""
    configs = collections.defaultdict(list)
    for p in shards:
        m = SHARD_RE.match(p)
        if m:
            configs[m.group("config")].append(p)
    # every file served that is not a shard of the layout is read in full too (load_dataset serves it)
    main = (configs["all"] if "all" in configs else sorted(shards)) + sorted(p for p in shards if not SHARD_RE.match(p))
    main = list(dict.fromkeys(main))
    rows: dict[str, RowInfo] = {}
    for split, info in progress(_fingerprints(folder, main, workers, served), desc="audit rows"):
        if isinstance(info, dict):
            report.integrity.append(info)
            continue
        if info.split != split:
            report.integrity.append({"problem": "split_column_mismatch", "path": info.sample_id,
                                     "detail": f"in {split} files but split column says {info.split!r}"})
        if info.sample_id in rows:
            report.integrity.append({"problem": "duplicate_sample_id", "path": info.sample_id,
                                     "detail": "sample_id appears twice"})
            continue
        rows[info.sample_id] = info
    if "all" in configs:
        _check_kind_configs(folder, configs, rows, report)
    return [rows[k] for k in sorted(rows)]


def _check_kind_configs(folder: Path, configs: dict, rows: dict[str, RowInfo], report: AuditReport) -> None:
    """Per-kind configs must be exactly the `all` rows of that kind."""
    for config, paths in sorted(configs.items()):
        if config == "all":
            continue
        ids = set()
        for p in paths:
            try:
                ids.update(open_shard(folder, p).read(columns=["sample_id"]).column("sample_id").to_pylist())
            except IntegrityProblem as e:
                report.integrity.append(e.to_json())
            except Exception as e:  # noqa: BLE001 (a damaged page)
                report.integrity.append({"problem": "unreadable_parquet", "path": p, "detail": str(e)[:200]})
        want = {sid for sid, r in rows.items() if r.kind == config}
        if ids != want:
            report.integrity.append({"problem": "config_mismatch", "path": f"data/{config}",
                                     "detail": f"{len(ids - want)} rows not in `all` of kind {config}, "
                                               f"{len(want - ids)} missing"})


# -- 3. leakage -----------------------------------------------------------------------------
def source_splits(rows: list[RowInfo], test_ids: set[str] | None) -> tuple[dict[str, set[str]], set[str]]:
    """Each source id's split(s) as fixed by single-source rows, and the set of test source ids."""
    seen: dict[str, set[str]] = collections.defaultdict(set)
    for r in rows:
        if len(r.source_ids) == 1 and r.kind in ("real", "healthy"):
            seen[r.source_ids[0]].add(r.split)
    inferred = {s for s, splits in seen.items() if "test" in splits}
    return seen, (set(test_ids) if test_ids is not None else inferred)


def lineage_leaks(rows: list[RowInfo], test_ids: set[str] | None, report: AuditReport) -> None:
    """Rows outside test that derive from a test source under `report.rule` (strict: any of its sources;
    the paper's: the sources `builder.published.rules` names), and lineage that contradicts itself."""
    from builder.published.rules import Resolver, row_facts

    seen, tests = source_splits(rows, test_ids)
    report.test_ids = len(tests)
    by_id = {r.sample_id: r for r in rows}
    resolver = Resolver()
    for r in rows:
        resolver.see(r.kind, r.sample_id, r.disease, r.source_ids, r.facts or row_facts(r.kind, {}))
    for sid, splits in sorted(seen.items()):
        if len(splits) > 1:
            report.leaks.append({"sample_id": sid, "split": "/".join(sorted(splits)),
                                 "reason": "source_in_several_splits",
                                 "detail": f"single-source rows of {sid} sit in {sorted(splits)}"})
    for r in rows:
        for ref in (r.base_id, r.donor_id):
            parent = by_id.get(ref) if ref else None
            if parent and not set(parent.source_ids) <= set(r.source_ids):
                report.leaks.append({"sample_id": r.sample_id, "split": r.split, "reason": "incomplete_lineage",
                                     "detail": f"{ref}'s sources {parent.source_ids} missing from source_ids"})
        if r.split == "test":
            continue
        deciding = resolver.sources(report.rule, r.kind, r.disease, r.source_ids, r.facts or row_facts(r.kind, {}))
        hit = sorted(set(deciding) & tests)
        if hit:
            reason = {"semantic": "semantic_model_saw_test_source"}.get(r.kind, f"{r.kind}_from_test_source")
            if report.rule == "paper" and r.kind == "semantic":
                reason = "semantic_prompt_of_test_source"
            report.leaks.append({"sample_id": r.sample_id, "split": r.split, "reason": reason,
                                 "detail": f"derived from test source(s) {hit[:5]}"})


def duplicate_leaks(rows: list[RowInfo], hamming: int, report: AuditReport) -> None:
    """Exact (sha256) and near (pHash within `hamming` bits) duplicates between test and other splits."""
    import numpy as np

    from builder.core.errors import ConfigError

    if isinstance(hamming, bool) or not isinstance(hamming, int) or not 0 <= hamming <= 64:
        raise ConfigError(f"phash_hamming={hamming!r}: expected a distance in bits of a 64-bit pHash, 0-64 (e.g. 6)")
    by_hash = collections.defaultdict(list)
    for r in rows:
        by_hash[r.sha256].append(r)
    for group in by_hash.values():
        if len({r.split for r in group}) > 1 and any(r.split == "test" for r in group):
            for r in group:
                if r.split != "test":
                    report.leaks.append({"sample_id": r.sample_id, "split": r.split,
                                         "reason": "exact_duplicate_across_splits",
                                         "detail": f"same bytes as test row(s) "
                                                   f"{[g.sample_id for g in group if g.split == 'test'][:3]}"})
    test = [r for r in rows if r.split == "test"]
    other = [r for r in rows if r.split != "test"]
    if not test or not other:
        return
    exact = {i["sample_id"] for i in report.leaks if i["reason"] == "exact_duplicate_across_splits"}
    pairs = near_pairs(np.array([r.phash for r in test], dtype=np.uint64),
                       np.array([r.phash for r in other], dtype=np.uint64), hamming)
    for ti, oi, d in pairs:
        o = other[oi]
        if o.sample_id in exact:
            continue
        if set(o.source_ids) & set(test[ti].source_ids):
            # a shared source makes this derivation (e.g. a test image mapped onto a train base), which
            # the lineage check judges; the curation counts these pairs the same way, as non-leaks
            report.derivation_pairs += 1
            continue
        report.leaks.append({"sample_id": o.sample_id, "split": o.split, "reason": "near_duplicate_across_splits",
                             "detail": f"pHash within {d} bits of test row {test[ti].sample_id}"})


def near_pairs(a, b, hamming: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for 64-bit hashes a[i], b[j] within `hamming` bits (faiss binary range search)."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its CPU-feature probing is noise on the CLI
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(_codes(b))
    lims, dist, idx = index.range_search(_codes(a), hamming + 1)  # radius is exclusive
    out = []
    for i in range(len(a)):
        for k in range(lims[i], lims[i + 1]):
            out.append((i, int(idx[k]), int(dist[k])))
    return sorted(out)


def _codes(h):
    import numpy as np

    return np.ascontiguousarray(h.astype(">u8")).view(np.uint8).reshape(-1, 8)


# -- the audit ------------------------------------------------------------------------------
def audit_folder(folder: Path, test_ids: set[str] | None = None, phash_hamming: int = 6,
                 target: str | None = None, workers: int = 1,
                 checked: tuple[AuditReport, list[str]] | None = None, rule: str | None = None) -> AuditReport:
    """Run every check on a local version folder (a build output or a downloaded snapshot), leakage under
    `rule` (None: the rule the version states, `builder.published.rules.version_rule`).

    `checked`: the (report, good shards) of a `check_manifest` the caller already ran on `folder`
    (export checks before it reads anything), carried on so no file is hashed twice."""
    from builder.published.push import manifest_files

    if checked is None:
        report = AuditReport(target=target or str(folder))
        shards = check_manifest(folder, report)
    else:
        report, shards = checked
    report.phash_hamming = phash_hamming
    report.test_ids_source = "file" if test_ids is not None else "inferred"
    report.rule = _rule(folder, rule)
    manifest = read_manifest_or_report(folder, None) if (folder / "manifest.json").is_file() else None
    try:
        rows_by_path = {f["path"]: f.get("rows") for f in manifest_files(manifest)} if manifest else {}
    except (PublishError, KeyError, TypeError, AttributeError):  # reported by check_manifest
        rows_by_path = {}
    served_ = served(folder, report)  # read too: load_dataset serves them, listed or not
    readable = [p for p in sorted(set(shards) | set(served_)) if check_schema(folder, p, rows_by_path.get(p), report)]
    _check_card_sizes(folder, readable, report)
    return _leakage(folder, readable, test_ids, report, workers, served_)


def audit_data(folder: Path, test_ids: set[str] | None = None, phash_hamming: int = 6,
               target: str | None = None, workers: int = 1, rule: str = "strict") -> AuditReport:
    """Leakage (under `rule`) and balance only, on the shards under `folder` (the build runs this before the
    card, with the version's rule)."""
    report = AuditReport(target=target or str(folder), phash_hamming=phash_hamming,
                         test_ids_source="file" if test_ids is not None else "inferred", rule=_rule(folder, rule))
    return _leakage(folder, collect_shards(folder), test_ids, report, workers)


def _rule(folder: Path, rule: str | None) -> str:
    from builder.published.rules import version_rule
    from curation.leakage import check_rule

    if rule is None:
        return version_rule(folder)
    check_rule(rule, "--rule")
    return rule


def _leakage(folder: Path, shards: list[str], test_ids: set[str] | None, report: AuditReport,
             workers: int = 1, served: dict[str, str] | None = None) -> AuditReport:
    rows = collect_rows(folder, shards, report, workers, served)
    report.rows = len(rows)
    if test_ids is not None:  # a file for another source would hold out nothing and pass as clean
        check_test_ids(test_ids, {s for r in rows for s in r.source_ids}, where=report.target,
                       hint="pass the test ids of the source this version was built from "
                            "(the build's splits.csv works: its test rows count)")
    lineage_leaks(rows, test_ids, report)
    duplicate_leaks(rows, report.phash_hamming, report)
    report.leaks.sort(key=lambda i: (i["sample_id"], i["reason"]))
    report.balance = balance_tables(rows, report.leaked_ids())
    return report


def _check_card_sizes(folder: Path, shards: list[str], report: AuditReport) -> None:
    """Each config's `dataset_info` split sizes equal the rows of the files its `data_files` match; a
    card whose YAML has another shape is a reported problem, not a traceback."""
    meta = read_card_yaml(folder, report)
    try:
        _card_sizes(folder, shards, meta, report)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        report.integrity.append({"problem": "malformed_card", "path": "README.md",
                                 "detail": f"front matter configs / dataset_info malformed ({type(e).__name__}: "
                                           f"{str(e)[:150]})"})


def _card_sizes(folder: Path, shards: list[str], meta: dict, report: AuditReport) -> None:
    import fnmatch

    import pyarrow.parquet as pq

    rows = {p: pq.read_metadata(folder / p).num_rows for p in shards}
    files_of = {}
    for c in meta.get("configs") or []:
        for df in c.get("data_files") or []:
            pats = [df["path"]] if isinstance(df["path"], str) else df["path"]
            files_of[(c["config_name"], df["split"])] = [p for p in shards if any(fnmatch.fnmatch(p, x) for x in pats)]
    infos = meta.get("dataset_info") or []
    for info in [infos] if isinstance(infos, dict) else infos:
        for sp in info.get("splits") or []:
            key = (info.get("config_name", "default"), sp["name"])
            have = sum(rows[p] for p in files_of.get(key, []))
            if have != int(sp["num_examples"]):
                report.integrity.append({"problem": "card_split_size_mismatch", "path": f"{key[0]}/{key[1]}",
                                         "detail": f"README.md says {sp['num_examples']} rows, files hold {have}"})
