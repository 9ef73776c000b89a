"""Croissant metadata (`croissant.json`) for a built version, written with mlcroissant's own classes.

One FileSet per config over its Parquet files (relative globs, so the file works in the build
folder and in a Hub snapshot), one RecordSet per config with the published columns; the split
comes from the file path. ClassLabel columns stay integers; their names are in the descriptions.
"""
from __future__ import annotations

import json
from pathlib import Path

from builder.core.config import BuildConfig
from builder.core.schema import KINDS, MALIGNANCY, SKIN_TONES

# column -> (Croissant data type, description); nested struct/list lineage columns are described
# in the card and kept out of the RecordSet (Croissant 1.0 readers disagree on nested Parquet).
COLUMNS = {
    "sample_id": ("sc:Text", "stable id: <kind>-<16 hex> from content and lineage"),
    "image": ("sc:ImageObject", "PNG image"),
    "kind": ("sc:Integer", f"ClassLabel {list(KINDS)}"),
    "split": ("sc:Text", "train, validation or test (by the leakage rule)"),
    "skin_tone": ("sc:Integer", f"ClassLabel {list(SKIN_TONES)} (DDI groups I-II, III-IV, V-VI)"),
    "fitzpatrick": ("sc:Integer", "Fitzpatrick type 1-6 when known"),
    "malignant": ("sc:Integer", f"ClassLabel {list(MALIGNANCY)}"),
    "disease": ("sc:Text", "joined disease class (65 DDI classes, or healthy)"),
    "disease_raw": ("sc:Text", "source disease label before joining"),
    "base_id": ("sc:Text", "lesion-mapped: the healthy base image"),
    "donor_id": ("sc:Text", "lesion-mapped: the real lesion donor"),
    "placement": ("sc:Text", "lesion-mapped: fit, downscaled, other_base, other_base_downscaled or kept_in_place"),
    "prompt": ("sc:Text", "generation prompt"),
    "seed": ("sc:Integer", "per-sample seed"),
    "params": ("sc:Text", "generation parameters, canonical JSON"),
    "toolkit_version": ("sc:Text", "cgddi-toolkit version that built the row"),
}


def croissant_metadata(cfg: BuildConfig, configs: list[str], url: str | None, description: str):
    import mlcroissant as mlc

    distribution, record_sets = [], []
    for config in configs:
        fs_id = f"parquet-files-for-config-{config}"
        pattern = "data/*/*.parquet" if config == "all" else f"data/{config}/*.parquet"
        distribution.append(mlc.FileSet(id=fs_id, name=fs_id, encoding_formats=["application/x-parquet"],
                                        includes=[pattern], description=f"Parquet shards of config {config}"))
        record_sets.append(mlc.RecordSet(id=config, name=config, description=f"cgDDI config {config}",
                                         fields=[_field(mlc, config, fs_id, c) for c in COLUMNS]))
    return mlc.Metadata(
        name=f"cgDDI-v{cfg.version}", description=description, url=url, version=_semver(cfg.version),
        license=["other: research use only, no original DDI image included (see README.md, Terms)"],
        cite_as="cgDDI: Controllable Generation of Diverse Dermatological Imagery (MICCAI 2026)",
        conforms_to="http://mlcommons.org/croissant/1.0",
        distribution=distribution, record_sets=record_sets)


def _field(mlc, config: str, fs_id: str, column: str):
    dtype, desc = COLUMNS[column]
    if column == "split":  # from the path: data/<config>/<split>-XXXXX-of-YYYYY.parquet
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(file_property="fullpath"),
                            transforms=[mlc.Transform(regex=r"^.*/(train|validation|test)-\d{5}-of-\d{5}\.parquet$")])
    elif column == "image":
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(column="image"),
                            transforms=[mlc.Transform(json_path="bytes")])
    else:
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(column=column))
    types = {"sc:Text": mlc.DataType.TEXT, "sc:Integer": mlc.DataType.INTEGER,
             "sc:ImageObject": mlc.DataType.IMAGE_OBJECT}
    return mlc.Field(id=f"{config}/{column}", name=column, description=desc, data_types=[types[dtype]],
                     source=source)


def _semver(version: str) -> str:
    parts = (version.split(".") + ["0", "0"])[:3]
    return ".".join(parts)


def write_croissant(out_dir: Path, cfg: BuildConfig, configs: list[str], url: str | None, description: str) -> str:
    """Write `croissant.json` (sorted keys: same inputs, same bytes); returns its relative path."""
    meta = croissant_metadata(cfg, configs, url, description)
    (out_dir / "croissant.json").write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    return "croissant.json"


def validate_croissant(path: Path) -> None:
    """Raise `mlcroissant.ValidationError` when the file does not validate."""
    import mlcroissant as mlc

    mlc.Dataset(jsonld=str(path))
