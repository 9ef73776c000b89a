"""Croissant 1.1 metadata (`croissant.json`) for a built version, written with mlcroissant's own classes.

One FileSet per config over its Parquet files (relative globs, so the file works in the build
folder and in a Hub snapshot), one RecordSet per config with every published column: the lineage
columns too (`source_ids` an array, `generator` a field with sub-fields), and the split from the
file path. ClassLabel columns stay integers; their names are in the descriptions. The
Responsible-AI fields (`rai:*`) come from `cards.rai`, the same statements as the card's.
"""
from __future__ import annotations

import json
from pathlib import Path

from builder.core.schema import KINDS, MALIGNANCY, SKIN_TONES
from cards import rai, text
from cards.card import tags
from cards.sources import card_license

CONFORMS_TO = ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
LICENSE_URLS = {"apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
                "cc-by-nc-sa-3.0": "https://creativecommons.org/licenses/by-nc-sa/3.0/"}

# column -> (Croissant data type, description, is an array)
COLUMNS = {
    "sample_id": ("sc:Text", "stable id: <kind>-<16 hex> from content and lineage", False),
    "image": ("sc:ImageObject", "PNG image", False),
    "kind": ("sc:Integer", f"ClassLabel {list(KINDS)}", False),
    "split": ("sc:Text", "train, validation or test (by the leakage rule)", False),
    "skin_tone": ("sc:Integer", f"ClassLabel {list(SKIN_TONES)} (Fitzpatrick groups I-II, III-IV, V-VI)", False),
    "fitzpatrick": ("sc:Integer", "Fitzpatrick type 1-6 when known", False),
    "malignant": ("sc:Integer", f"ClassLabel {list(MALIGNANCY)}", False),
    "disease": ("sc:Text", "joined disease class, or healthy", False),
    "disease_raw": ("sc:Text", "source disease label before joining", False),
    "source_ids": ("sc:Text", "every source photo the row derives from (<source>:<id>)", True),
    "base_id": ("sc:Text", "lesion-mapped: the healthy base image", False),
    "donor_id": ("sc:Text", "lesion-mapped: the source lesion donor", False),
    "placement": ("sc:Text", "lesion-mapped: fit, downscaled, other_base, other_base_downscaled or kept_in_place",
                  False),
    "prompt": ("sc:Text", "generation prompt (diffusion rows only)", False),
    "seed": ("sc:Integer", "per-sample seed", False),
    "generator": (None, "what produced the image", False),
    "auto_masks": (None, "automatic (not hand-drawn) masks the row derives from; empty = hand masks only", True),
    "params": ("sc:Text", "generation parameters, canonical JSON", False),
    "toolkit_version": ("sc:Text", "cgddi-toolkit version that built the row", False),
}
AUTO_MASK = {
    "source_id": ("sc:Text", "the source photo the mask belongs to", False),
    "method": ("sc:Text", "mask method", False),
    "version": ("sc:Text", "mask method version", False),
    "confidence": ("sc:Float", "the method's confidence in the mask", False),
}
GENERATOR = {
    "backend": ("sc:Text", "opencv, lesion_map, diffusers, ...", False),
    "model_id": ("sc:Text", "model id (Hub id, or local:<folder name>)", False),
    "revision": ("sc:Text", "pinned model revision", False),
    "adapters": ("sc:Text", "adapter files (textual inversion, LoRA) with their hashes", True),
}

STRUCTS = {"generator": GENERATOR, "auto_masks": AUTO_MASK}


def croissant_metadata(configs: list[str], url: str | None, facts: text.CardFacts):
    import mlcroissant as mlc

    distribution, record_sets = [], []
    for config in configs:
        fs_id = f"parquet-files-for-config-{config}"
        pattern = "data/*/*.parquet" if config == "all" else f"data/{config}/*.parquet"
        distribution.append(mlc.FileSet(id=fs_id, name=fs_id, encoding_formats=["application/x-parquet"],
                                        includes=[pattern], description=f"Parquet shards of config {config}"))
        record_sets.append(mlc.RecordSet(id=config, name=config, description=f"cgDDI config {config}",
                                         fields=[_field(mlc, config, fs_id, c) for c in COLUMNS]))
    sources, kinds = facts.sources, facts.kinds
    lic = card_license(sources)
    return mlc.Metadata(
        name=f"cgDDI-v{facts.cfg.version}", url=url, version=_semver(facts.cfg.version),
        description=f"cgDDI v{facts.cfg.version}: {facts.rows} synthetic dermatology images from "
                    + " and ".join(s.title for s in sources) + ".",
        license=[LICENSE_URLS.get(lic, f"{lic}: see LICENSE.md")], keywords=tags(facts),
        cite_as=text.CITATIONS["cgddi"], conforms_to=CONFORMS_TO,
        distribution=distribution, record_sets=record_sets,
        data_collection=rai.data_collection(sources, kinds),
        data_preprocessing_protocol=rai.generation(kinds) + _pixel_statements(facts),
        data_biases=rai.biases(sources, kinds), data_limitations=rai.limitations(sources, kinds),
        personal_sensitive_information=rai.personal_sensitive(sources),
        data_use_cases=rai.use_cases(sources))


def _pixel_statements(facts: text.CardFacts) -> list[str]:
    if facts.pixels is None:
        return []
    return [text.strip_markdown(text.plain_pixels(kind, m)) for kind, m in facts.pixels.items()]


def _field(mlc, record_set: str, fs_id: str, column: str, parent: str | None = None):
    dtype, desc, is_array = (STRUCTS[parent] if parent else COLUMNS)[column]
    fid = f"{record_set}/{parent + '/' if parent else ''}{column}"
    if column in STRUCTS:
        array = {"is_array": True, "array_shape": "-1"} if is_array else {}
        return mlc.Field(id=fid, name=column, description=desc, **array,
                         sub_fields=[_field(mlc, record_set, fs_id, c, parent=column) for c in STRUCTS[column]])
    if parent:  # a struct member: the parent column, then its key
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(column=parent),
                            transforms=[mlc.Transform(json_path=column)])
    elif column == "split":  # from the path: data/<config>/<split>-XXXXX-of-YYYYY.parquet
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(file_property="fullpath"),
                            transforms=[mlc.Transform(regex=r"^.*/(train|validation|test)-\d{5}-of-\d{5}\.parquet$")])
    elif column == "image":
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(column="image"),
                            transforms=[mlc.Transform(json_path="bytes")])
    else:
        source = mlc.Source(file_set=fs_id, extract=mlc.Extract(column=column))
    types = {"sc:Text": mlc.DataType.TEXT, "sc:Integer": mlc.DataType.INTEGER, "sc:Float": mlc.DataType.FLOAT,
             "sc:ImageObject": mlc.DataType.IMAGE_OBJECT}
    array = {"is_array": True, "array_shape": "-1"} if is_array else {}
    return mlc.Field(id=fid, name=column, description=desc, data_types=[types[dtype]], source=source, **array)


def _semver(version: str) -> str:
    parts = (version.split(".") + ["0", "0"])[:3]
    return ".".join(parts)


def write_croissant(out_dir: Path, configs: list[str], url: str | None, facts: text.CardFacts) -> str:
    """Write `croissant.json` (sorted keys: same inputs, same bytes); returns its relative path."""
    meta = croissant_metadata(configs, url, facts)
    (out_dir / "croissant.json").write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    return "croissant.json"
