"""Publish a curated version: the last guard, shards, audit, plots, card, Croissant and manifest written to a
staging folder, installed as the version by one rename; then the load-back check."""
from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.errors import BuildError
from builder.core.schema import KINDS, Record, version_disease_names
from builder.core.store import StageStore

log = logging.getLogger(__name__)


def refuse_source_copies(records: list[Record], stores: dict, real: list[Record], real_hashes: dict,
                         hashes: dict) -> None:
    """No synthetic row may be a source photo, byte for byte or decoded pixel for pixel (a
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
            stage_fingerprints: dict[str, str] | None = None, review: dict | None = None,
            stand_in: dict | None = None) -> list[dict]:
    """Shards, leakage audit, plots, croissant.json, card, manifest: written to a staging folder, then
    installed as `out_dir` (an existing version with other content is refused unless `overwrite`).

    Curation has already removed leakage, so an audit finding at this point is a bug: the build
    stops rather than publish it (`refuse_leaks=False` exists for tests that plant leaks).
    `source` (the source's name and fingerprint, as ingest recorded them) is shown in the card; `review`
    (`builder.build.review.review_facts`, with build --decisions) is reported in the card and the manifest."""
    from builder.published.audit import audit_data
    from builder.build.manifest import file_entry, install_version, write_manifest
    from builder.build.shards import write_shards
    from builder.build.fill_artefacts import measure_fill_artefacts
    from builder.build.source_pixels import measure_source_pixels
    from builder.core.backends import card_entries
    from cards.card import card_facts, write_card, write_license
    from cards.croissant import write_croissant
    from cards.plots import write_plots

    staging = _staging(out_dir)
    files = []
    diseases = version_disease_names(records)  # one ClassLabel for every config, the card's too
    for kind in KINDS:
        mine = [r for r in records if r.kind == kind]
        if mine:
            files += write_shards(mine, stores, staging, kind, cfg.publish.shard_mb, diseases)
    audit = audit_data(staging, phash_hamming=cfg.curation.phash_hamming, target=f"build of v{cfg.version}",
                       workers=workers, rule=cfg.curation.leakage_rule).to_json()
    if audit["leakage"]["rows"]:
        msg = (f"leakage audit of the staged v{cfg.version} found {audit['leakage']['rows']} leaked rows "
               f"({audit['leakage']['by_reason']}) after curation")
        if refuse_leaks:
            raise BuildError(f"{msg}; nothing was published. Inspect {staging} with "
                             f"`python -m builder audit {staging}` and report it: curation should have removed them")
        log.warning("%s; see the card", msg)
    plots = write_plots(staging, records, stores)
    pixels = measure_source_pixels(records, stores, workers=workers)  # what the card says of source pixels
    fill_artefacts = measure_fill_artefacts(records, stores, workers=workers)  # the card's known artefacts
    facts = card_facts(cfg, records, plots, audit, pixels=pixels, source_info=source,
                       delivery=next((st["delivery"] for st in stages if "delivery" in st), None),
                       rules=next((st["counts"].get("rows_by_rule") for st in stages
                                   if st.get("stage") == "curate" and "counts" in st), None),
                       generator_entries=card_entries(cfg), review=review, stand_in=stand_in,
                       fill_artefacts=fill_artefacts)
    configs = ["all"] + sorted({f["config"] for f in files}, key=KINDS.index)
    extras = plots + [write_croissant(staging, configs, _hub_url(cfg), facts)]
    write_card(staging, files, facts)
    extras += ["README.md", write_license(staging, facts)]
    audit_summary = {k: audit[k] for k in ("ok", "rows", "phash_hamming", "test_ids")}
    audit_summary["leakage"] = {k: audit["leakage"][k] for k in ("rows", "by_reason")}
    extra = {"audit": audit_summary, "source_pixels": pixels}
    if fill_artefacts is not None:  # every id each fill artefact detector flagged
        extra["fill_artefacts"] = fill_artefacts
    if source is not None:  # what the rows were made from, and the build's own fingerprint
        extra.update(source=source, build_fingerprint=fingerprint)
    if stage_fingerprints:  # each stage's key: what a rebuild compares to reuse or rerun it
        extra["stage_fingerprints"] = stage_fingerprints
    if review is not None:  # the decisions file by name and sha256, and what the review decided
        extra["review"] = review
    if stand_in:  # a CPU stand-in ran in place of the version's generator: the manifest says which
        extra["stand_in"] = stand_in
    write_manifest(staging, cfg, files + [file_entry(staging, rel) for rel in sorted(extras)], stages,
                   extra=extra)
    install_version(staging, out_dir, overwrite)
    return files


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

    from builder.core.layout import VersionLayout

    root = VersionLayout.of_folder(out_dir).staging_root
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
            if row["mask"] is not None:
                row["mask"].load()
            if not isinstance(row["disease"], int):
                raise BuildError(f"{out_dir}: config {config!r} split {split!r}: disease loads as "
                                 f"{type(row['disease']).__name__}, expected a ClassLabel index")
