"""The build's steps, in data-path order, each on the one step contract (`builder.core.stage.Step`).

`STEPS` is the build: `check` runs for every enabled step before any work, then `run` for each in
order. A step reads what earlier steps left in the `BuildContext` and adds its own outputs; steps
that write a store key it by their settings and their inputs' fingerprints (`ctx.fps`), so a
changed setting reruns exactly the steps it touches (`builder.core.stage.pin`).
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from builder.core.config import BuildConfig
from builder.core.errors import ConfigError
from builder.core.fingerprint import combine
from builder.core.layout import VersionLayout
from builder.core.schema import Record
from builder.core.stage import Step, store_fingerprint
from builder.core.store import StageStore

log = logging.getLogger(__name__)


@dataclasses.dataclass
class BuildContext:
    """What the steps share: the config and options, then each step's outputs as it finishes."""

    cfg: BuildConfig
    opts: Any  # builder.build.pipeline.BuildOptions
    layout: VersionLayout
    table: Any = None          # the source table, read once (curation.source.metadata.SourceTable)
    source: Path | None = None
    masks: Path | None = None
    source_name: str | None = None
    holdout: list[str] | None = None
    auto_masks: Path | None = None
    plan: Any = None           # curation.source.ingest.IngestPlan
    build_fp: str | None = None
    stores: dict[str, StageStore] = dataclasses.field(default_factory=dict)  # by row kind
    fps: dict[str, str] = dataclasses.field(default_factory=dict)             # by step name
    real_records: list[Record] = dataclasses.field(default_factory=list)
    real_split: Any = None     # curation.curate.RealSplit
    split_of: dict[str, str] = dataclasses.field(default_factory=dict)
    curated: Any = None        # curation.curate.Curated
    files: list[dict] = dataclasses.field(default_factory=list)
    stages: list[dict] = dataclasses.field(default_factory=list)
    decisions: dict[str, str] = dataclasses.field(default_factory=dict)
    stand_in: dict | None = None  # which generator stood in for which (builder.build.pipeline.apply_stand_in)
    review: Any = None         # builder.core.decisions.Decisions (build --decisions), else None

    @property
    def work(self) -> Path:
        return self.layout.work

    def note(self, summary) -> dict:
        """Log a step's summary line and keep it for the build summary and the manifest."""
        log.info(summary.line())
        self.decisions[summary.stage] = summary.status
        self.stages.append(summary.to_json())
        return self.stages[-1]


@dataclasses.dataclass(frozen=True)
class SourceInput:
    """One source folder of a build, its masks folder (None: `<folder>/masks`) and its id prefix (None: its layout)."""

    folder: Path
    masks: Path | None = None
    name: str | None = None


def source_inputs(opts) -> list[SourceInput]:
    """The build's source folders, each with its masks folder and name ([] for the embedded demo source).

    `source` is one folder or several (`--source` repeated); with several, `masks` and `source_name` are
    each left out or given once per source, in the same order (`--masks` and `--source-name` repeated)."""
    if opts.source is None:
        return []
    if not isinstance(opts.source, (tuple, list)):
        if isinstance(opts.masks, (tuple, list)) or isinstance(opts.source_name, (tuple, list)):
            raise ConfigError("several --masks or --source-name for one --source: give one of each per --source")
        return [SourceInput(Path(opts.source), Path(opts.masks) if opts.masks else None, opts.source_name)]
    folders = [Path(f) for f in opts.source]
    masks, names = _per_source(opts.masks, folders, "--masks"), _per_source(opts.source_name, folders, "--source-name")
    return [SourceInput(f, Path(m) if m else None, n) for f, m, n in zip(folders, masks, names)]


def _per_source(given, folders: list[Path], flag: str) -> list:
    if given is None:
        return [None] * len(folders)
    given = list(given) if isinstance(given, (tuple, list)) else [given]
    if len(given) != len(folders):
        raise ConfigError(f"{flag} given {len(given)} times for {len(folders)} --source folders "
                          f"({', '.join(map(str, folders))}): give it once per --source, in the same order, "
                          "or leave it out")
    return given


class SourceStep(Step):
    """Read the source's table once (validated); fix a table-decided holdout (PatchAlign24's) on it."""

    name = "source"

    def check(self, cfg: BuildConfig, device: str) -> None:
        from curation.source.metadata import check_subset

        check_subset(cfg.source.subset)

    def run(self, ctx: BuildContext) -> None:
        from curation.source.metadata import read_source_table
        from curation.splits import table_holdout

        from builder.build.review import load

        ctx.review = load(ctx.opts.decisions)
        ctx.source, ctx.masks, ctx.source_name = _source(ctx)
        if ctx.source is None:  # several --source folders: each read alone, then one table of them all
            ctx.table = _read_sources(ctx)
            ctx.source, ctx.masks = ctx.table.root, None
        else:
            ctx.table = read_source_table(ctx.source, ctx.masks, source_name=ctx.source_name, limit=ctx.opts.limit,
                                          subset=ctx.cfg.source.subset)
        ctx.holdout = table_holdout(ctx.cfg.curation, ctx.table)  # several sources: each one's own, joined


class MasksStep(Step):
    """Automatic masks for photos without one, gated by confidence (before ingest, which reads them)."""

    name = "masks"

    def enabled(self, cfg: BuildConfig) -> bool:
        return cfg.masks.auto

    def check(self, cfg: BuildConfig, device: str) -> None:
        from curation.source.automasks.run import check_inputs

        check_inputs(cfg.masks)

    def run(self, ctx: BuildContext) -> None:
        from curation.source.automasks.run import run_masks

        ctx.auto_masks = ctx.work / "auto_masks"
        ctx.note(run_masks(ctx.table, ctx.masks, ctx.auto_masks, ctx.cfg.masks, device=ctx.opts.device,
                           on_change="reset"))


class IngestStep(Step):
    """Photos and masks into the real store (bad rows become rejections), keyed by the source's bytes.
    A published version built from another source is refused here, before the work folder changes."""

    name, kind = "ingest", "real"

    def check(self, cfg: BuildConfig, device: str) -> None:
        if not isinstance(cfg.source.min_side_px, int) or cfg.source.min_side_px < 1:
            from builder.core.errors import ConfigError

            raise ConfigError(f"source.min_side_px={cfg.source.min_side_px!r}: expected a whole number of "
                              "pixels >= 1")

    def run(self, ctx: BuildContext) -> None:
        from builder.build.guards import build_fingerprint, guard_fingerprint
        from builder.build.review import mask_discards
        from curation.source.ingest import ingest_source, plan_ingest

        ctx.plan = plan_ingest(ctx.source, ctx.masks, source_name=ctx.source_name, limit=ctx.opts.limit,
                               auto_masks=ctx.auto_masks, min_side_px=ctx.cfg.source.min_side_px, table=ctx.table,
                               discarded_masks=mask_discards(ctx.review))
        ctx.build_fp = build_fingerprint(ctx.cfg, ctx.plan.info)
        guard_fingerprint(ctx.layout.version_dir, ctx.cfg, ctx.plan.info, ctx.build_fp, ctx.opts.overwrite)
        real = ctx.stores[self.kind] = StageStore(ctx.work / "real")
        ctx.note(ingest_source(ctx.source, ctx.masks, real, workers=ctx.opts.workers, on_change="reset",
                               plan=ctx.plan, min_side_px=ctx.cfg.source.min_side_px))
        ctx.fps[self.name] = store_fingerprint(real)


class SplitsStep(Step):
    """Splits over the real images (lineage groups, near-duplicates linked), before any generation:
    semantic training and lesion-map pairs must know the test split."""

    name = "splits"

    def check(self, cfg: BuildConfig, device: str) -> None:
        from curation.curate import check_config

        check_config(cfg.curation)

    def run(self, ctx: BuildContext) -> None:
        from curation.curate_run import split_phase

        ctx.real_records, ctx.real_split = split_phase(ctx.stores["real"], ctx.cfg.curation, ctx.work,
                                                       workers=ctx.opts.workers, test_ids=ctx.holdout)
        ctx.split_of = ctx.real_split.split_of
        ctx.fps[self.name] = combine(sorted(ctx.split_of.items()))


class HealthyStep(Step):
    """Healthy synthetics: each real image's lesion region inpainted away."""

    name = kind = "healthy"

    def check(self, cfg: BuildConfig, device: str) -> None:
        from builder.core.errors import ConfigError
        from generation.healthy.stage import check

        try:
            check(cfg.healthy)
        except ConfigError as e:
            h = cfg.healthy
            if h.stand_in is None or h.stand_in == h.backend:
                raise
            raise ConfigError(f"{e}; or build with --cpu-stand-in to use this version's CPU stand-in "
                              f"healthy.stand_in={h.stand_in} (the card and every row then say so)") from None

    def run(self, ctx: BuildContext) -> None:
        from generation.healthy.stage import run_healthy

        healthy = ctx.stores[self.kind] = StageStore(ctx.work / "healthy")
        ctx.note(run_healthy(ctx.stores["real"], healthy, ctx.cfg.healthy, device=ctx.opts.device,
                             inputs={"real": ctx.fps["ingest"]}, on_change="reset"))
        _reviewed(ctx, self)


class LesionMapStep(Step):
    """Lesion-mapped synthetics: real lesions moved onto healthy bases, pairs planned within a split."""

    name, kind = "lesion_map", "lesion_mapped"

    def check(self, cfg: BuildConfig, device: str) -> None:
        from generation.lesion_map.stage import check

        check(cfg.lesion_map)

    def run(self, ctx: BuildContext) -> None:
        from generation.lesion_map.stage import delivery, run_lesion_map_pool

        mapped = ctx.stores[self.kind] = StageStore(ctx.work / self.kind)
        summary = ctx.note(run_lesion_map_pool(ctx.stores["healthy"], ctx.stores["real"], mapped, ctx.cfg.lesion_map,
                                               split_of=ctx.split_of, workers=ctx.opts.workers, on_change="reset"))
        summary["delivery"] = delivery(mapped)  # delivered / planned per cell: build summary, card, manifest
        _reviewed(ctx, self)


class SemanticStep(Step):
    """Semantic synthetics: textual inversion + LoRA per disease on train images, then sampling."""

    name = kind = "semantic"

    def enabled(self, cfg: BuildConfig) -> bool:
        return cfg.semantic.budget > 0

    def check(self, cfg: BuildConfig, device: str) -> None:
        from generation.semantic.released import check_spec
        from generation.semantic.trainer import check_config

        check_config(cfg.semantic, device)
        for spec in cfg.semantic.released:
            check_spec(spec, "semantic.released:")

    def run(self, ctx: BuildContext) -> None:
        from generation.semantic.build import run_semantic

        out = ctx.stores[self.kind] = StageStore(ctx.work / "semantic")
        ctx.note(run_semantic(ctx.stores["real"], ctx.split_of, out, ctx.cfg.semantic, device=ctx.opts.device,
                              work_dir=ctx.work / "models", healthy=ctx.stores["healthy"], on_change="reset",
                              inputs={k: ctx.fps[k] for k in ("ingest", "splits", "healthy")},
                              photos_of=_photos_of(ctx)))
        _reviewed(ctx, self)


def _photos_of(ctx: BuildContext) -> dict[str, list[tuple[str, bool]]]:
    """Joined disease -> [(source id, malignant)] of every row of the source's DDI table, read whole (with a
    mask or not, ingested or not): a released model's lineage, since it saw every DDI photo of its disease.
    Empty without `semantic.released`."""
    if not ctx.cfg.semantic.released:
        return {}
    from builder.core.errors import ConfigError
    from builder.published.release.index import read_photos

    if ctx.table.layout != "ddi":
        raise ConfigError(f"semantic.released: the released models were trained on DDI, and this source is "
                          f"{ctx.table.layout} ({ctx.table.table}); build from a DDI folder, or set "
                          "semantic.released to []")
    out: dict[str, list[tuple[str, bool]]] = {}
    for p in read_photos(ctx.table.table).values():
        out.setdefault(p.disease, []).append((f"{ctx.table.name}:{p.stem}", p.malignant))
    return out


class CurateStep(Step):
    """Curation (the same orchestrator as `curate`): the leakage rule, cross-split near-duplicates,
    one copy per split."""

    name = "curate"

    def run(self, ctx: BuildContext) -> None:
        from curation.curate_run import curate_phase

        ctx.curated, _ = curate_phase(ctx.stores["real"], ctx.real_records, ctx.real_split, ctx.stores,
                                      ctx.cfg.curation, ctx.work, workers=ctx.opts.workers,
                                      include_real=ctx.cfg.publish.include_real,
                                      outside=_outside_splits(ctx))
        cur = ctx.curated
        ctx.stages.append({"stage": self.name, "done": len(cur.records), "rejected": cur.counts["by_reason"],
                           "moved_or_removed_for_leakage": len(cur.report), "counts": cur.counts})


def _outside_splits(ctx: BuildContext) -> dict[str, str]:
    """With `semantic.released`: the split of each photo of the DDI table that has none (not ingested: no
    mask, unreadable), which a released model's rows name: test when the table-decided holdout holds it
    out, else train (it is in no test set of this version). The strict rule then holds out every row
    whose model saw a held-out photo, ingested or not."""
    held = set(ctx.holdout or ())
    cur = ctx.cfg.curation
    if ctx.cfg.semantic.released and cur.split_method == "test_ids" and cur.test_ids_file:
        from builder.core.splits_file import read_test_ids

        held |= set(read_test_ids(Path(cur.test_ids_file)))
    return {s: "test" if s in held else "train" for photos in _photos_of(ctx).values() for s, _ in photos
            if s not in ctx.split_of}


class PublishStep(Step):
    """Last guard, then shards, card, manifest, installed as the version; then prove the output loads.
    The manifest's stage counts come from the stores (what exists), not from this run (what it did):
    resumed or not, the same bytes."""

    name = "publish"

    def run(self, ctx: BuildContext) -> None:
        from builder.build.publish import publish, refuse_source_copies, stage_content, verify_load

        records = ctx.curated.records
        refuse_source_copies(records, ctx.stores, ctx.real_records, ctx.real_split.hashes, ctx.curated.hashes)
        kinds = {step.name: step.kind for step in STEPS if step.kind}
        content = [stage_content(st, ctx.stores[kinds[st["stage"]]]) for st in ctx.stages if st["stage"] in kinds]
        curate = next(st for st in ctx.stages if st["stage"] == CurateStep.name)
        content.append({"records" if k == "done" else k: v for k, v in curate.items()})
        ctx.files = publish(ctx.layout.version_dir, ctx.cfg, records, ctx.stores, content,
                            overwrite=ctx.opts.overwrite, workers=ctx.opts.workers, source=ctx.plan.info,
                            fingerprint=ctx.build_fp, stage_fingerprints=ctx.fps, review=_review_facts(ctx),
                            stand_in=ctx.stand_in)
        verify_load(ctx.layout.version_dir, ctx.files)


# The build, in order.
STEPS: tuple[Step, ...] = (SourceStep(), MasksStep(), IngestStep(), SplitsStep(), HealthyStep(), LesionMapStep(),
                           SemanticStep(), CurateStep(), PublishStep())


def _reviewed(ctx: BuildContext, step: Step) -> None:
    """The step's store seen through the review (discarded images dropped), and its fingerprint, which
    names what the review dropped: the steps downstream rerun exactly when that changes."""
    from builder.build.review import reviewed

    store = ctx.stores[step.kind] = reviewed(ctx.stores[step.kind], step.name, ctx.review)
    ctx.fps[step.name] = store_fingerprint(store)
    dropped = getattr(store, "dropped", None)
    if dropped:  # the build summary names them beside the step's own rejections
        for entry in (st for st in ctx.stages if st["stage"] == step.name):
            entry["rejected"] = {**entry.get("rejected", {}), "discarded_in_review": len(dropped)}


def _review_facts(ctx: BuildContext) -> dict | None:
    if ctx.review is None:
        return None
    from builder.build.review import review_facts

    masks = {e["source_id"] for _, e in ctx.plan.items  # automatic masks a reviewer could see
             if e is not None and (e["accepted"] or e["reason"] == "mask_discarded_in_review")}
    return review_facts(ctx.review, ctx.opts.decisions, ctx.stores, masks)


def check_steps(cfg: BuildConfig, device: str = "cpu") -> None:
    """Every enabled step's `check`, before the source is read or any model loaded."""
    for step in STEPS:
        if step.enabled(cfg):
            step.check(cfg, device)


def run_steps(ctx: BuildContext) -> None:
    for step in STEPS:
        if step.enabled(ctx.cfg):
            step.run(ctx)


def _source(ctx: BuildContext) -> tuple[Path | None, Path | None, str | None]:
    """Source folder, mask folder and name: a --source folder is named by its layout (`ddi`,
    `fitz17k`) unless --source-name says otherwise; the embedded demo source is `demo`. Several
    --source folders: (None, None, None), read by `_read_sources`."""
    inputs = source_inputs(ctx.opts)
    if len(inputs) > 1:
        return None, None, None
    if inputs:
        return inputs[0].folder, inputs[0].masks, inputs[0].name
    from builder.demo_source import write_demo_source

    folder = write_demo_source(ctx.work / "demo_source", ctx.cfg.source.demo_count, ctx.cfg.source.demo_seed)
    return folder, folder / "masks", "demo"


def _read_sources(ctx: BuildContext):
    """Every --source folder's table, read alone (ids keep each one's prefix), as one table (`merge_tables`).
    `source.subset` selects Fitzpatrick17k rows by their `qc` column: it applies to the Fitzpatrick17k
    sources; a DDI source, which has no such column, is read whole."""
    from curation.source.metadata import find_table, merge_tables, read_source_table

    tables = []
    for given in source_inputs(ctx.opts):
        subset = ctx.cfg.source.subset if find_table(given.folder)[0] != "ddi" else "all"
        tables.append(read_source_table(given.folder, given.masks, source_name=given.name, limit=ctx.opts.limit,
                                        subset=subset))
    return merge_tables(tables)
