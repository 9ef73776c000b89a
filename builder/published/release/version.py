"""`import-release --to-version NAME`: the release's lesion maps as a toolkit version, through the build's
own publish path (shards, leakage audit, plots, croissant, card, manifest, load-back check).

Rows carry typed lineage: `source_ids` = [base, donor] (`ddi:<stem>`), `base_id` and `donor_id` the
same photos (the release has no healthy row to point at), tone from the base and label from the
donor (the method's rule), the split of the chosen leakage rule, and as `generator` the release
itself (`cgddi-release`, the Hub id or `local:<folder>`, the commit). Pixels are the release's
bytes, read from the release folder (or the Hub cache) a row group at a time; nothing is copied.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from builder.core.schema import DDI_TONE_TO_NAME, Generator, Record
from builder.published.release import index as ix
from builder.published.release.names import Photo
from builder.published.release.source import ReleaseSource, local_root

BACKEND = "cgddi-release"


def release_records(out: Path, photos: dict[str, Photo], gen: Generator, rule: str) -> list[Record]:
    """One Record per lesion map of the index (unparsed files are not published)."""
    records = []
    for row in ix.iter_index(out):
        if row["kind"] != "lesion_mapped":
            continue
        base, donor = photos[row["base_id"].split(":", 1)[1]], photos[row["donor_id"].split(":", 1)[1]]
        records.append(Record(
            sample_id=ix.release_sample_id(row["file"]), kind="lesion_mapped", skin_tone=DDI_TONE_TO_NAME[base.tone],
            malignant=donor.malignant, disease=donor.disease, disease_raw=donor.disease_raw,
            source_ids=[row["base_id"], row["donor_id"]], image_path=row["file"], split=row["split"],
            base_id=row["base_id"], donor_id=row["donor_id"], generator=gen,
            params={"release_file": row["file"], "donor_tone": int(row["donor_tone"]), "rule": rule}))
    return records


def version_config(name: str, hold: ix.Holdout):
    """The toolkit config the version is published under: v1.1's publishing and curation settings,
    named `name`, with the holdout that split it. No generation setting of it was used."""
    from builder.core.config import load_config

    cfg = load_config("1.1")
    patchalign = hold.method == "patchalign24"
    cur = dataclasses.replace(cfg.curation, split_method="patchalign24" if patchalign else "test_ids",
                              test_ids_file=None if patchalign else hold.file)
    return dataclasses.replace(cfg, version=name, curation=cur,
                               publish=dataclasses.replace(cfg.publish, repo_id=None, include_real=False))


def write_version(out: Path, src: ReleaseSource, photos: dict[str, Photo], hold: ix.Holdout, rule: str, name: str,
                  report: dict, overwrite: bool = False) -> dict:
    """Publish `out/<name>/` and prove it loads; returns its folder and rows per split."""
    from collections import Counter

    from builder.build.publish import publish, verify_load
    from builder.core.errors import ReleaseError
    from builder.core.schema import public_model_id
    from builder.core.store import StageStore

    desc = src.describe()
    model = src.repo_id if src.repo_id else public_model_id(str(src.folder))
    gen = Generator(BACKEND, model, src.commit)
    records = release_records(out, photos, gen, rule)
    if not records:
        raise ReleaseError(f"the release holds no lesion map this toolkit can parse ({report['by_kind']}); "
                           "nothing to publish as a version (see release_index.csv for the reasons)")
    root = local_root(src, [r.image_path for r in records])
    index_sha = hashlib.sha256((out / ix.INDEX).read_bytes()).hexdigest()[:16]
    info = {"name": BACKEND, "index_sha256": index_sha, "files": report["files"],
            "release": {**desc, "rule": rule, "holdout": hold.describe(), "by_kind": report["by_kind"],
                        "lesion_maps_by_rule": report["lesion_maps_by_rule"]}}
    stage = {"stage": "import-release", "records": len(records), "rule": rule, "holdout": hold.describe(),
             "lesion_maps_by_rule": report["lesion_maps_by_rule"],
             "unparsed": {k: v["files"] for k, v in report["unparsed"].items()}}
    folder = out / name
    files = publish(folder, version_config(name, hold), records, {"lesion_mapped": StageStore(root)}, [stage],
                    overwrite=overwrite, workers=1, source=info, fingerprint=index_sha)
    verify_load(folder, files)
    return {"folder": str(folder), "rows": dict(sorted(Counter(r.split for r in records).items()))}
