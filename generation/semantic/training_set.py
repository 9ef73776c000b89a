"""Training sets for the disease models: train-split real images only, and the manifest of what a model saw."""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from builder.core.errors import ConfigError, LeakageError  # noqa: F401 (callers import LeakageError from here too)
from builder.core.schema import SKIN_TONES, Record
from builder.core.store import StageStore

TEMPLATE = "An image of {token} on the skin of a {tone}-skinned individual"
CLASS_TEMPLATE = "An image of healthy skin on a {tone}-skinned individual"
MANIFEST = "manifest.json"


def disease_token(disease: str) -> str:
    """`<{disease with spaces as _}-class>` (method section 3)."""
    return f"<{disease.strip().replace(' ', '_')}-class>"


def disease_slug(disease: str) -> str:
    """A folder- and shard-safe name for a disease."""
    return "".join(c if c.isalnum() else "_" for c in disease.strip().lower())


def check_distinct_slugs(diseases: list[str]) -> None:
    """Two names that share a folder would overwrite each other's models."""
    seen: dict[str, str] = {}
    for d in diseases:
        other = seen.setdefault(disease_slug(d), d)
        if other != d:
            raise ConfigError(f"diseases {other!r} and {d!r} share the folder name {disease_slug(d)!r}; "
                              "join them in the disease map or rename one")


def prompt_for(disease: str, tone: str) -> str:
    return TEMPLATE.format(token=disease_token(disease), tone=tone)


def class_prompt(tone: str) -> str:
    return CLASS_TEMPLATE.format(tone=tone)


@dataclasses.dataclass(frozen=True)
class TrainingImage:
    """One image a model trains on: where its pixels are, which real images it derives from."""

    sample_id: str
    source_ids: tuple[str, ...]
    skin_tone: str
    disease: str
    malignant: bool
    sha256: str

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source_ids"] = list(self.source_ids)
        return d


def allowed_splits(include_validation: bool) -> tuple[str, ...]:
    return ("train", "validation") if include_validation else ("train",)


def check_not_leaking(record: Record, splits: dict[str, str], allowed: tuple[str, ...]) -> None:
    """Raise unless every real image behind `record` is in an allowed split (a missing split is refused too)."""
    for sid in record.source_ids:
        split = splits.get(sid)
        if split == "test":
            raise LeakageError(f"{record.sample_id} derives from {sid}, which is in the held-out test "
                               "split; a model that sees it leaks the test set. Remove it from the "
                               "requested images (splits are decided before training)")
        if split not in allowed:
            raise LeakageError(f"{record.sample_id} derives from {sid}, whose split is {split!r}, not "
                               f"one of {allowed}; add it to splits.csv or set "
                               "semantic.include_validation")


def select_instances(real: StageStore, splits: dict[str, str], disease: str, *,
                     include_validation: bool = False, only_ids: list[str] | None = None) -> list[TrainingImage]:
    """The disease's real images in the allowed splits, sorted by id; explicit test images are refused."""
    allowed = allowed_splits(include_validation)
    records = [r for r in real.records() if r.kind == "real"]
    if only_ids is not None:
        by_id = {r.sample_id: r for r in records} | {r.source_ids[0]: r for r in records}
        missing = sorted(set(only_ids) - set(by_id))
        if missing:
            raise ConfigError(f"requested training images {missing} are not in the real store {real.root}")
        chosen = [by_id[i] for i in only_ids]
        for r in chosen:
            check_not_leaking(r, splits, allowed)
            if r.disease != disease:
                raise ConfigError(f"requested image {r.sample_id} is {r.disease!r}, not {disease!r}")
    else:
        chosen = [r for r in records if r.disease == disease
                  and all(splits.get(s) in allowed for s in r.source_ids)]
    chosen = sorted({r.sample_id: r for r in chosen}.values(), key=lambda r: r.sample_id)
    if not chosen:
        raise ConfigError(f"no real images of disease {disease!r} in splits {allowed} in {real.root}; "
                          f"diseases there: {sorted({r.disease for r in records})}")
    return [_training_image(real, r) for r in chosen]


def select_class_images(healthy: StageStore, splits: dict[str, str], *,
                        include_validation: bool = False) -> list[TrainingImage]:
    """Healthy synthetics usable as prior-preservation class images: every source in an allowed split."""
    allowed = allowed_splits(include_validation)
    recs = [r for r in healthy.records() if r.kind == "healthy"
            and all(splits.get(s) in allowed for s in r.source_ids)]
    return [_training_image(healthy, r) for r in recs]


def _training_image(store: StageStore, r: Record) -> TrainingImage:
    data = store.read_image_bytes(r)
    return TrainingImage(r.sample_id, tuple(r.source_ids), r.skin_tone, r.disease, bool(r.malignant),
                         hashlib.sha256(data).hexdigest())


def decide_malignant(images: list[TrainingImage]) -> bool:
    """A disease's label is its training images' majority; a tie counts as malignant (the costlier miss)."""
    votes = collections.Counter(im.malignant for im in images)
    return votes[True] >= votes[False]


def tones_present(images: list[TrainingImage]) -> list[str]:
    return [t for t in SKIN_TONES if any(im.skin_tone == t for im in images)]


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Atomically write `manifest.json`; written last, it marks the model as finished."""
    path = folder / MANIFEST
    tmp = folder / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def manifest_source_ids(manifest: dict[str, Any]) -> list[str]:
    """Every real image a model derives from: instance images and the sources of its class images."""
    ids = {s for im in manifest["images"] for s in im["source_ids"]}
    ids |= {s for im in manifest.get("class_images", []) for s in im["source_ids"]}
    return sorted(ids)
