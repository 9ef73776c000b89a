"""The build: source -> healthy -> lesion-mapped (+ semantic) -> curation -> shards + card + manifest -> load-back check."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.errors import BuildError, ConfigError
from builder.core.fingerprint import combine
from builder.core.schema import KINDS, SKIN_TONES, SPLITS, Record, disease_names
from builder.core.stage import store_fingerprint
from builder.core.store import StageStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    """Operational settings only (content lives in the versioned config)."""

    out: Path = Path("out")
    source: Path | None = None
    masks: Path | None = None
    source_name: str | None = None  # id prefix; default: the source's layout (ddi, fitz17k), or demo
    device: str = "cpu"
    workers: int | None = None  # None: all cores
    overwrite: bool = False
    limit: int | None = None


@dataclasses.dataclass
class BuildResult:
    out_dir: Path
    records: list[Record]
    files: list[dict]
    stages: list[dict]
    decisions: dict[str, str] = dataclasses.field(default_factory=dict)  # stage -> reused / rerun because ...

    def table(self) -> str:
        """Rows per kind x split x skin tone, as a fixed-width text table."""
        counts = Counter((r.kind, r.split, r.skin_tone) for r in self.records)
        head = f"{'kind':<14}{'split':<12}" + "".join(f"{t:>8}" for t in SKIN_TONES) + f"{'total':>8}"
        lines = [head, "-" * len(head)]
        for kind in KINDS:
            for split in SPLITS:
                row = [counts[(kind, split, t)] for t in SKIN_TONES]
                if any(row):
                    lines.append(f"{kind:<14}{split:<12}" + "".join(f"{n:>8}" for n in row) + f"{sum(row):>8}")
        lines.append(f"{'total':<26}" + "".join(
            f"{sum(v for (k, s, t), v in counts.items() if t == tone):>8}" for tone in SKIN_TONES)
            + f"{len(self.records):>8}")
        return "\n".join(lines)


def check_inputs(cfg: BuildConfig, opts: BuildOptions) -> None:
    """Fail on bad options or settings of any stage before any work starts."""
    if opts.device not in ("cpu", "cuda") and not opts.device.startswith("cuda:"):
        raise ConfigError(f"--device {opts.device!r}: expected cpu, cuda or cuda:N")
    if opts.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {opts.device} asked for, but torch sees no CUDA device; use --device cpu")
    if opts.source is None and cfg.source.name != "demo":
        raise ConfigError(f"version {cfg.version} uses source {cfg.source.name!r}: pass --source DIR (and --masks DIR)")
    if opts.source is not None and not Path(opts.source).is_dir():
        raise ConfigError(f"--source {opts.source} is not a folder")
    if not isinstance(cfg.source.min_side_px, int) or cfg.source.min_side_px < 1:
        raise ConfigError(f"source.min_side_px={cfg.source.min_side_px!r}: expected a whole number of pixels >= 1")
    if opts.source_name is not None:
        if opts.source is None:
            raise ConfigError(f"--source-name {opts.source_name} names a --source folder; the embedded demo "
                              "source is always 'demo'")
        from curation.source.metadata import check_source_name

        check_source_name(opts.source_name)
    check_stages(cfg, opts.device)



def check_stages(cfg: BuildConfig, device: str = "cpu") -> None:
    """Every stage's `check` on its config section, before ingest or any generation."""
    from curation.curate import check_config as check_curation
    from generation.healthy.stage import check as check_healthy
    from generation.lesion_map.stage import check as check_lesion_map

    if cfg.masks.auto:
        from curation.source.automasks.run import check_inputs as check_masks

        check_masks(cfg.masks)
    check_healthy(cfg.healthy)
    check_lesion_map(cfg.lesion_map)
    if cfg.semantic.budget > 0:
        from generation.semantic.trainer import check_config as check_semantic

        check_semantic(cfg.semantic, device)
    check_curation(cfg.curation)


def build(cfg: BuildConfig, opts: BuildOptions) -> BuildResult:
    """Run every stage of a version into `<out>/<version>/` (publishable) and `<out>/.work/<version>/` (stages).

    Every stage's outputs are keyed by the fingerprints of its inputs (`builder.core.stage`): a rerun
    reuses what still matches, reruns exactly the stages whose source or settings changed, and logs
    which (`[stage] ...; reused` / `; rerun because X changed`). The run holds the work folder's lock
    (a second build of the version into the same --out refuses, naming this one) and appends its
    statistics to `<work>/runs.jsonl`; the manifest holds content only."""
    from builder.core.lock import hold
    from builder.core.runlog import RunLog

    from builder.core.layout import VersionLayout

    check_inputs(cfg, opts)
    layout = VersionLayout(Path(opts.out), cfg.version).check_no_links()  # a name, never a path; no links out
    out_dir, work = layout.version_dir, layout.work
    with hold(work, command=f"build --version {cfg.version}") as holder, RunLog(work, holder, opts) as run:
        result = _build(cfg, opts, out_dir, work)
        run.stages = result.stages
        return result


def _build(cfg: BuildConfig, opts: BuildOptions, out_dir: Path, work: Path) -> BuildResult:
    stages: list[dict] = []
    decisions: dict[str, str] = {}

    def note(summary) -> dict:
        log.info(summary.line())
        decisions[summary.stage] = summary.status
        stages.append(summary.to_json())
        return stages[-1]

    # 1. Source -> real store (validated; bad rows become rejections), keyed by the source's bytes;
    #    the source names itself. A published version from another config or source is refused
    #    here, before the work folder changes. A table-decided holdout (PatchAlign24's) is fixed
    #    first, from the metadata alone: rejections at ingest cannot shift it.
    from curation.source.ingest import ingest_source, plan_ingest
    from curation.splits import table_holdout

    _guard_existing(out_dir, cfg, opts.overwrite)
    source, masks, source_name = _source(cfg, opts, work)
    holdout = table_holdout(cfg.curation, source, source_name)

    auto_dir = None
    if cfg.masks.auto:  # photos without a mask get an automatic one (gated by confidence) before ingest
        from curation.source.automasks.run import run_masks

        auto_dir = work / "auto_masks"
        note(run_masks(source, masks, auto_dir, cfg.masks, source_name=source_name, limit=opts.limit,
                       device=opts.device))
    plan = plan_ingest(source, masks, source_name=source_name, limit=opts.limit, auto_masks=auto_dir,
                       min_side_px=cfg.source.min_side_px)
    build_fp = build_fingerprint(cfg, plan.info)
    _guard_fingerprint(out_dir, cfg, plan.info, build_fp, opts.overwrite)
    real = StageStore(work / "real")
    note(ingest_source(source, masks, real, workers=opts.workers, on_change="reset", plan=plan,
                       min_side_px=cfg.source.min_side_px))
    fps = {"ingest": store_fingerprint(real)}

    # 2. Splits over real images (lineage groups, near-duplicates linked), decided before any
    #    generation: semantic training must know the test split.
    from curation.curate_run import curate_phase, split_phase

    real_records, real_split = split_phase(real, cfg.curation, work, workers=opts.workers, test_ids=holdout)
    split_of = real_split.split_of
    fps["splits"] = combine(sorted(split_of.items()))

    # 3. Healthy synthetics, then lesion-mapped (and semantic) synthetics.
    stores = _generate(cfg, opts, work, real, split_of, fps, note)

    # 4. Curation (the same orchestrator as `curate`): the leakage rule, cross-split
    #    near-duplicates, one copy per split.
    cur, _ = curate_phase(real, real_records, real_split, stores, cfg.curation, work, workers=opts.workers,
                          include_real=cfg.publish.include_real)
    records = cur.records
    curate = {"stage": "curate", "done": len(records), "rejected": cur.counts["by_reason"],
              "moved_or_removed_for_leakage": len(cur.report), "counts": cur.counts}
    stages.append(curate)

    # 5. Last guard, then shards, card, manifest; then prove the output loads. The manifest's stage
    #    counts come from the stores (what exists), not from this run (what it did): resumed or not,
    #    the same bytes.
    refuse_source_copies(records, stores, real_records, real_split.hashes, cur.hashes)
    by_stage = {"ingest": "real", "healthy": "healthy", "lesion_map": "lesion_mapped", "semantic": "semantic"}
    content = [stage_content(st, stores[by_stage[st["stage"]]]) for st in stages if st["stage"] in by_stage]
    content.append({"records" if k == "done" else k: v for k, v in curate.items()})
    files = publish(out_dir, cfg, records, stores, content, overwrite=opts.overwrite, workers=opts.workers,
                    source=plan.info, fingerprint=build_fp, stage_fingerprints=fps)
    verify_load(out_dir, files)
    return BuildResult(out_dir, records, files, stages, decisions)


def refuse_source_copies(records: list[Record], stores: dict, real: list[Record], real_hashes: dict,
                         hashes: dict) -> None:
    """No synthetic row may be a source photo, byte for byte or decoded pixel for pixel (issue 11: a
    mask covering the whole photo once published the photo itself as `healthy`). A hit is a bug in the
    stage that made the row, so the build stops before anything is written.

    Curation has hashed every decoded image already (`real_hashes`, `hashes`): equal bytes decode to
    equal pixels, so the pixel hash finds every copy; bytes are read only to name a hit, or for a row
    curation did not hash."""
    import hashlib

    def sha(store: StageStore, rec: Record) -> str:
        return hashlib.sha256(store.read_image_bytes(rec)).hexdigest()

    real_pixels = {h.pixel_hash: real_id for real_id, h in real_hashes.items()}
    by_id = {r.sample_id: r for r in real}
    real_bytes = None  # sha256 -> source id, built only when a row has no pixel hash
    hits = []
    for r in records:
        if r.kind == "real":  # publish.include_real publishes sources on purpose
            continue
        if r.sample_id in hashes:
            pix = real_pixels.get(hashes[r.sample_id].pixel_hash)
            if pix is None:
                continue
            src = by_id[pix].source_ids[0] if pix in by_id else pix
            same = pix in by_id and stores[r.kind].read_image_bytes(r) == stores["real"].read_image_bytes(by_id[pix])
            hits.append(f"{r.sample_id} = {'bytes' if same else 'pixels'} of {src}")
            continue
        if real_bytes is None:
            real_bytes = {sha(stores["real"], x): x.source_ids[0] for x in real}
        src = real_bytes.get(sha(stores[r.kind], r))
        if src:
            hits.append(f"{r.sample_id} = bytes of {src}")
    if hits:
        raise BuildError(f"{len(hits)} synthetic rows are copies of source photos ({'; '.join(hits[:3])}); "
                         "nothing was published. The stage that made them let a source through: report it "
                         "with these ids (rerun with -v for its log)")


def publish(out_dir: Path, cfg: BuildConfig, records: list[Record], stores: dict, stages: list[dict],
            overwrite: bool = False, workers: int | None = 1, refuse_leaks: bool = True,
            source: dict | None = None, fingerprint: str | None = None,
            stage_fingerprints: dict[str, str] | None = None) -> list[dict]:
    """Shards, leakage audit, plots, croissant.json, card, manifest: written to a staging folder, then
    installed as `out_dir` (an existing version with other content is refused unless `overwrite`).

    Curation has already removed leakage, so an audit finding at this point is a bug: the build
    stops rather than publish it (`refuse_leaks=False` exists for tests that plant leaks).
    `source` (the source's name and fingerprint, as ingest recorded them) is shown in the card."""
    from builder.published.audit import audit_data
    from builder.build.manifest import file_entry, install_version, write_manifest
    from builder.build.shards import write_shards
    from builder.build.source_pixels import measure_source_pixels
    from cards.card import card_facts, write_card, write_license
    from cards.croissant import write_croissant
    from cards.plots import write_plots

    staging = _staging(out_dir)
    files = []
    diseases = disease_names(r.disease for r in records)  # one ClassLabel for every config
    for kind in KINDS:
        mine = [r for r in records if r.kind == kind]
        if mine:
            files += write_shards(mine, stores, staging, kind, cfg.publish.shard_mb, diseases)
    audit = audit_data(staging, phash_hamming=cfg.curation.phash_hamming,
                       target=f"build of v{cfg.version}", workers=workers).to_json()
    if audit["leakage"]["rows"]:
        msg = (f"leakage audit of the staged v{cfg.version} found {audit['leakage']['rows']} leaked rows "
               f"({audit['leakage']['by_reason']}) after curation")
        if refuse_leaks:
            raise BuildError(f"{msg}; nothing was published. Inspect {staging} with "
                             f"`python -m builder audit {staging}` and report it: curation should have removed them")
        log.warning("%s; see the card", msg)
    plots = write_plots(staging, records, stores)
    pixels = measure_source_pixels(records, stores, workers=workers)  # what the card says of source pixels
    facts = card_facts(cfg, records, plots, audit, pixels=pixels, source_info=source,
                       delivery=next((st["delivery"] for st in stages if "delivery" in st), None))
    configs = ["all"] + sorted({f["config"] for f in files}, key=KINDS.index)
    extras = plots + [write_croissant(staging, configs, _hub_url(cfg), facts)]
    write_card(staging, files, facts)
    extras += ["README.md", write_license(staging, facts)]
    audit_summary = {k: audit[k] for k in ("ok", "rows", "phash_hamming", "test_ids")}
    audit_summary["leakage"] = {k: audit["leakage"][k] for k in ("rows", "by_reason")}
    extra = {"audit": audit_summary, "source_pixels": pixels}
    if source is not None:  # what the rows were made from, and the build's own fingerprint
        extra.update(source=source, build_fingerprint=fingerprint)
    if stage_fingerprints:  # each stage's key: what a rebuild compares to reuse or rerun it
        extra["stage_fingerprints"] = stage_fingerprints
    write_manifest(staging, cfg, files + [file_entry(staging, rel) for rel in sorted(extras)], stages,
                   extra=extra)
    install_version(staging, out_dir, overwrite)
    return files


def _generate(cfg: BuildConfig, opts: BuildOptions, work: Path, real: StageStore, split_of: dict[str, str],
              fps: dict[str, str], note) -> dict[str, StageStore]:
    """The generation stages, each keyed by its upstream fingerprints (added to `fps`); their stores."""
    from generation.healthy.stage import run_healthy
    from generation.lesion_map.stage import delivery, run_lesion_map_pool

    healthy = StageStore(work / "healthy")
    note(run_healthy(real, healthy, cfg.healthy, device=opts.device, inputs={"real": fps["ingest"]},
                     on_change="reset"))
    fps["healthy"] = store_fingerprint(healthy)
    mapped = StageStore(work / "lesion_mapped")
    lesion_map = note(run_lesion_map_pool(healthy, real, mapped, cfg.lesion_map, split_of=split_of,
                                          workers=opts.workers, on_change="reset"))
    lesion_map["delivery"] = delivery(mapped)  # delivered / planned per cell: build summary, card, manifest
    fps["lesion_map"] = store_fingerprint(mapped)
    stores = {"real": real, "healthy": healthy, "lesion_mapped": mapped}
    if cfg.semantic.budget > 0:  # textual inversion + LoRA per disease, then sampling (GPU in practice)
        from generation.semantic.build import run_semantic

        stores["semantic"] = StageStore(work / "semantic")
        note(run_semantic(real, split_of, stores["semantic"], cfg.semantic, device=opts.device,
                          work_dir=work / "models", healthy=healthy, on_change="reset",
                          inputs={k: fps[k] for k in ("ingest", "splits", "healthy")}))
        fps["semantic"] = store_fingerprint(stores["semantic"])
    return stores


def stage_content(stage: dict, store: StageStore) -> dict:
    """A stage's content for the manifest: its records and its rejections by reason, read from its store
    (and the lesion map's delivery per plan cell, which the card shows)."""
    out = {"stage": stage["stage"], "records": len(store.records()),
           "rejected": dict(sorted(Counter(r.reason for r in store.rejections()).items()))}
    if "delivery" in stage:
        out["delivery"] = stage["delivery"]
    return out


def _staging(out_dir: Path) -> Path:
    """A fresh staging folder named per process; those of dead runs of this version are removed."""
    from builder.core.lock import pid_alive

    root = out_dir.parent / ".staging"
    for old in root.glob(f"{out_dir.name}.*") if root.is_dir() else []:
        pid = old.name[len(out_dir.name) + 1:]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(root / out_dir.name, ignore_errors=True)  # an older toolkit's name
    staging = root / f"{out_dir.name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _hub_url(cfg: BuildConfig) -> str | None:
    return f"https://huggingface.co/datasets/{cfg.publish.repo_id}" if cfg.publish.repo_id else None


def verify_load(out_dir: Path, files: list[dict]) -> None:
    """Prove the folder loads with `datasets`, in memory bounded by one shard, at any size.

    Per config: `load_dataset_builder` resolves the card's configs, features and data-file globs;
    the Parquet files it resolves must be exactly the shards written, and their row counts (from
    the Parquet footers) the rows written; then the first row of every split is cast and decoded
    with the card's features, as the Parquet loader does (the image opens as a PIL image, `disease`
    is a ClassLabel index). A full `load_dataset` would convert every shard into an Arrow cache: a
    second copy of every image on disk and a peak RSS that grew with the build (1.2 GiB at 5k
    rows). Streaming is not used: a stream left unfinished leaves Arrow threads that abort the
    interpreter at exit ("terminate called without an active exception")."""
    import datasets
    import pyarrow.parquet as pq
    from datasets.table import table_cast

    from builder.core.progress import progress_enabled

    if not progress_enabled():  # --quiet silences the library's bars too
        datasets.disable_progress_bars()
    expected: dict[tuple[str, str], int] = Counter()
    paths: dict[tuple[str, str], set[str]] = {}
    for f in files:
        for config in ("all", f["config"]):
            expected[(config, f["split"])] += f["rows"]
            paths.setdefault((config, f["split"]), set()).add(str((out_dir / f["path"]).resolve()))
    for config in sorted({c for c, _ in expected}):
        builder = datasets.load_dataset_builder(str(out_dir), name=config)
        if builder.info.features is None:
            raise BuildError(f"{out_dir}/README.md: config {config!r} declares no features (dataset_info)")
        resolved = {s: {str(Path(p).resolve()) for p in fl} for s, fl in builder.config.data_files.items()}
        want = {s: paths[(c, s)] for c, s in paths if c == config}
        if resolved != want:
            extra = sorted(set().union(*resolved.values()) - set().union(*want.values()))
            missing = sorted(set().union(*want.values()) - set().union(*resolved.values()))
            raise BuildError(f"{out_dir}: config {config!r} resolves other files than the shards written "
                             f"(served but not written: {extra[:3]}; written but not served: {missing[:3]})")
        got = {s: sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(fl)) for s, fl in resolved.items()}
        rows = {s: n for (c, s), n in expected.items() if c == config}
        if got != rows:
            raise BuildError(f"{out_dir}: config {config!r} loads back as {got}, expected {rows}")
        for split, paths_ in sorted(resolved.items()):  # the first row of each split, as `datasets` decodes it
            first = pq.ParquetFile(sorted(paths_)[0]).read_row_group(0).slice(0, 1)
            row = builder.info.features.decode_example(table_cast(first, builder.info.features.arrow_schema)
                                                       .to_pylist()[0])
            row["image"].load()  # the PNG decodes with the card's Image feature
            if not isinstance(row["disease"], int):
                raise BuildError(f"{out_dir}: config {config!r} split {split!r}: disease loads as "
                                 f"{type(row['disease']).__name__}, expected a ClassLabel index")


def _source(cfg: BuildConfig, opts: BuildOptions, work: Path) -> tuple[Path, Path | None, str | None]:
    """Source folder, mask folder and name: a --source folder is named by its layout (`ddi`,
    `fitz17k`) unless --source-name says otherwise; the embedded demo source is `demo`."""
    if opts.source is not None:
        return Path(opts.source), (Path(opts.masks) if opts.masks else None), opts.source_name
    from builder.demo_source import write_demo_source

    folder = write_demo_source(work / "demo_source", cfg.source.demo_count, cfg.source.demo_seed)
    return folder, folder / "masks", "demo"


def build_fingerprint(cfg: BuildConfig, source_info: dict) -> str:
    """The build's fingerprint: its content settings, its source's fingerprint and the toolkit version."""
    from builder.core.schema import TOOLKIT_VERSION

    return combine("build", cfg.config_hash(), source_info.get("fingerprint"), TOOLKIT_VERSION)


def _guard_fingerprint(out_dir: Path, cfg: BuildConfig, source_info: dict, fingerprint: str,
                       overwrite: bool) -> None:
    """A published version built from another source is refused before any generation (not after)."""
    manifest = out_dir / "manifest.json"
    if overwrite or not manifest.exists():
        return
    old = json.loads(manifest.read_text())
    old_fp = old.get("build_fingerprint")
    if old_fp is not None and old_fp != fingerprint:
        was = old.get("source") or {}
        raise BuildError(f"{out_dir} holds version {cfg.version} built from source {was.get('name')!r} "
                         f"(fingerprint {was.get('fingerprint')}), not from source {source_info['name']!r} "
                         f"(fingerprint {source_info['fingerprint']}); published versions are immutable: "
                         "pass --overwrite to replace it, or build into another --out")


def _guard_existing(out_dir: Path, cfg: BuildConfig, overwrite: bool) -> None:
    """A version is immutable: rebuilding it from another config needs --overwrite (checked before any stage)."""
    manifest = out_dir / "manifest.json"
    if manifest.exists() and not overwrite:
        old = json.loads(manifest.read_text()).get("config_hash")
        if old != cfg.config_hash():
            raise BuildError(f"{out_dir} holds version {cfg.version} built from another config "
                             f"(hash {old}, now {cfg.config_hash()}); pass --overwrite to replace it")
