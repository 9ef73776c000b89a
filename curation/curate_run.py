"""The one curation orchestrator (`build` and `curate`): real splits, then synthetic curation, tables on disk."""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from builder.core.config import CurationConfig
from builder.core.errors import BuildError, ConfigError
from builder.core.schema import Record, Rejection
from builder.core.splits_file import write_splits
from builder.core.store import StageStore
from curation.curate import (Curated, RealSplit, check_config, curate_records, read_training_manifests,
                             reconcile, split_real)
from curation.source.ingest import ingest_source, read_counts
from curation.splits import split_table

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CurateOptions:
    source: Path | tuple[Path, ...] | None  # several: ingested into one store, each keeps its holdout
    out: Path
    real: Path | None = None  # an already ingested real store (instead of `source`)
    masks: Path | None = None
    source_name: str | None = None
    synthetic: dict[str, Path] = dataclasses.field(default_factory=dict)
    manifests: list[Path] = dataclasses.field(default_factory=list)
    workers: int | None = None
    limit: int | None = None


def curate_source(cfg: CurationConfig, opts: CurateOptions) -> str:
    """Run curation into `opts.out` (holding its lock: a second run into it refuses); returns the summary."""
    from builder.core.lock import hold

    check_config(cfg)
    with hold(opts.out, command="curate"):
        return _curate(cfg, opts)


def _curate(cfg: CurationConfig, opts: CurateOptions) -> str:
    out = Path(opts.out)
    manifests = read_training_manifests(opts.manifests)  # bad inputs fail before any work
    real_store = _real_store(opts)
    ingested = real_store.records()
    real, rs = split_phase(real_store, cfg, out, workers=opts.workers,
                           test_ids=_holdout(cfg, opts, real_store, ingested) if ingested else None)
    stores = {kind: StageStore(p) for kind, p in opts.synthetic.items()}
    _, summary = curate_phase(real_store, real, rs, stores, cfg, out, workers=opts.workers,
                              training_manifests=manifests)
    return _summary_text(summary, out)


def split_phase(real_store: StageStore, cfg: CurationConfig, out: Path, *, workers: int | None = None,
                test_ids: list[str] | None = None) -> tuple[list[Record], RealSplit]:
    """Curation, part 1 (build and `curate`): splits over the real images, written to `out/splits.csv`.

    The build runs it before generation (semantic training and lesion-map pairs must know the
    splits), `curate` right before part 2.
    """
    real = real_store.records()
    if not real:
        raise BuildError(f"no usable real image in {real_store.root}; see {Path(out) / 'rejections.csv'} "
                         "for the reasons")
    _write_rejections(Path(out) / "rejections.csv", real_store.rejections())  # early: useful if a later step fails
    rs = split_real(real, real_store, cfg, workers=workers, test_ids=test_ids)
    write_splits(Path(out) / "splits.csv", rs.split_of)
    return real, rs


def curate_phase(real_store: StageStore, real: list[Record], rs: RealSplit, stores: dict[str, StageStore],
                 cfg: CurationConfig, out: Path, *, workers: int | None = None,
                 training_manifests: dict[str, list[str]] | None = None,
                 include_real: bool = False, outside: dict[str, str] | None = None) -> tuple[Curated, dict]:
    """Curation, part 2 (build and `curate`): leakage rule, de-duplication, and the tables in `out`.

    Candidates are every record of `stores` (plus the kept real images with `include_real`); `outside`
    gives the split of source photos that were not ingested (a released model's lineage names them);
    writes records.jsonl, rejections.csv, duplicates.csv, leakage_report.csv and curation.json.
    """
    out = Path(out)
    real_kept = rs.kept(real)
    real_counts = reconcile("real_dedup", len(real), real_kept,
                            rs.rejections + [d.to_rejection("curate") for d in rs.duplicates])
    candidates = [r for kind in sorted(stores) if kind != "real" for r in stores[kind].records()]
    candidates += real_kept if include_real else []
    cur = curate_records(candidates, stores, real, rs, cfg, workers=workers,
                         training_manifests=training_manifests, outside=outside)
    _write_jsonl(out / "records.jsonl", cur.records)
    all_rej = real_store.rejections() + rs.rejections + [d.to_rejection("curate") for d in rs.duplicates] \
        + cur.rejections
    _write_rejections(out / "rejections.csv", all_rej)
    dup_rows = [(d.sample_id, d.dup_of, d.kind, d.hamming, "real") for d in rs.duplicates] + \
               [(d.sample_id, d.dup_of, d.kind, d.hamming, "synthetic") for d in cur.duplicates]
    _write_csv(out / "duplicates.csv", ["sample_id", "dup_of", "kind", "hamming", "scope"], sorted(dup_rows))
    _write_report(out / "leakage_report.csv", cur.report)
    summary = {"config": dataclasses.asdict(cfg), "ingest": read_counts(real_store),
               "real_dedup": real_counts, "synthetic": cur.counts,
               "splits": split_table(real_kept, rs.split_of)}
    (out / "curation.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    return cur, summary


def _real_store(opts: CurateOptions) -> StageStore:
    """Ingest `opts.source` into `<out>/real` (resumes), or use the ingested store `opts.real`."""
    if (opts.source is None) == (opts.real is None):
        raise ConfigError("give exactly one of --source DIR (ingest it) or --real STORE (already ingested)")
    if opts.real is not None:
        store = StageStore(opts.real)
        if not store.shard_done("ingest"):
            raise ConfigError(f"--real {opts.real}: no finished ingest there (records/ingest.jsonl); "
                              "pass the real store of a build (out/.work/<version>/real) or use --source")
        return store
    store = StageStore(Path(opts.out) / "real")
    if isinstance(opts.source, tuple):
        from curation.source.ingest import plan_ingest

        plan = plan_ingest(opts.source[0], None, table=_merged(opts), limit=opts.limit)
        log.info(ingest_source(opts.source[0], None, store, workers=opts.workers, plan=plan).line())
        return store
    log.info(ingest_source(opts.source, opts.masks, store, source_name=opts.source_name, limit=opts.limit,
                           workers=opts.workers).line())
    return store


def _merged(opts: CurateOptions):
    """Several --source folders (each with its --masks and --source-name, in order, or none) as one table."""
    from curation.source.metadata import merge_tables, read_source_table

    def each(given, flag: str) -> list:
        if given is None:
            return [None] * len(opts.source)
        if not isinstance(given, tuple) or len(given) != len(opts.source):
            raise ConfigError(f"{flag}: give it once per --source ({len(opts.source)}), in the same order, or leave "
                              "it out")
        return list(given)

    return merge_tables([read_source_table(folder, masks, source_name=name, limit=opts.limit)
                         for folder, masks, name in zip(opts.source, each(opts.masks, "--masks"),
                                                        each(opts.source_name, "--source-name"))])


def _holdout(cfg: CurationConfig, opts: CurateOptions, store: StageStore, real: list[Record]) -> list[str] | None:
    """PatchAlign24's holdout over the source's metadata table (the ingest records which table it read)."""
    if cfg.split_method != "patchalign24":
        return None
    from curation.splits import holdout_test_ids, table_holdout

    if isinstance(opts.source, tuple):
        return table_holdout(cfg, _merged(opts))
    if opts.source is not None:
        return table_holdout(cfg, Path(opts.source), opts.source_name)
    counts = read_counts(store)
    if counts.get("tables"):  # a store of several sources: each one's holdout on its own table
        return _store_holdouts(cfg, counts)
    table = counts.get("table")
    if not table or not Path(table).is_file():
        log.warning("--real %s: its ingest names no readable metadata table; the holdout falls back to the "
                    "ingested images", opts.real)
        return None
    return holdout_test_ids(table, real[0].source_ids[0].split(":", 1)[0], cfg.patchalign24_csv)


def _store_holdouts(cfg: CurationConfig, counts: dict) -> list[str] | None:
    from curation.splits import holdout_test_ids

    layouts = {e["name"]: e["layout"] for e in (counts.get("source") or {}).get("sources", [])}
    missing = [t for t in counts["tables"].values() if not Path(t).is_file()]
    if missing:
        log.warning("the store's ingest names tables that are not readable here (%s); the holdout falls back to "
                    "the ingested images", ", ".join(missing))
        return None
    return sorted(s for name, table in counts["tables"].items() for s in holdout_test_ids(
        table, name, cfg.patchalign24_csv if layouts.get(name) == "ddi" else None))


def _summary_text(s: dict, out: Path) -> str:
    ing, rd, syn = s["ingest"], s["real_dedup"], s["synthetic"]
    lines = [f"ingest     in={ing.get('in')} kept={ing.get('kept')} rejected={ing.get('rejected')} "
             f"{ing.get('by_reason') or ''}",
             f"real dedup in={rd['in']} kept={rd['kept']} rejected={rd['rejected']} {rd['by_reason'] or ''}",
             f"synthetic  in={syn['in']} kept={syn['kept']} rejected={syn['rejected']} {syn['by_reason'] or ''}",
             "", f"{'split':<12}" + "".join(f"{k:>18}" for k in _strata(s["splits"])) + f"{'total':>8}"]
    for split, counts in s["splits"].items():
        lines.append(f"{split:<12}" + "".join(f"{counts.get(k, 0):>18}" for k in _strata(s["splits"]))
                     + f"{sum(counts.values()):>8}")
    lines.append(f"\nwritten to {out}")
    return "\n".join(lines)


def _strata(splits: dict) -> list[str]:
    return sorted({k for c in splits.values() for k in c})


def _write_csv(path: Path, header: list[str], rows: list) -> None:
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(zip(*rows)) if rows else [[] for _ in header]
    pl.DataFrame({h: list(c) for h, c in zip(header, cols)},
                 schema={h: (pl.Int64 if h == "hamming" else pl.String) for h in header}).write_csv(path)


def _write_rejections(path: Path, rejections: list[Rejection]) -> None:
    rows = sorted((r.stage, r.item_id, r.reason, r.detail, r.path or "") for r in rejections)
    _write_csv(path, ["stage", "item_id", "reason", "detail", "path"], rows)


def _write_report(path: Path, report: list[dict]) -> None:
    cols = ["sample_id", "kind", "action", "split", "reason", "source_ids", "source_splits", "dup_of", "hamming"]
    rows = [tuple(";".join(map(str, r[c])) if isinstance(r.get(c), list) else
                  (r.get(c) if c == "hamming" or r.get(c) is None else str(r.get(c))) for c in cols)
            for r in sorted(report, key=lambda r: (r["sample_id"], r["reason"]))]
    _write_csv(path, cols, rows)


def _write_jsonl(path: Path, records: list[Record]) -> None:
    path.write_text("".join(json.dumps(r.to_json(), sort_keys=True) + "\n" for r in records))
