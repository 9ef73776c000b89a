"""Croissant 1.1 metadata (`croissant.json`) for a built version, written with mlcroissant's own classes.

One FileSet per config over its Parquet files (relative globs, so the file works in the build
folder and in a Hub snapshot), one RecordSet per config with every published column, in
`builder.core.schema.PUBLISHED_COLUMNS` order with its declared type and description: the lineage
columns too (`source_ids` an array, `generator` a field with sub-fields), and the split from the
file path. ClassLabel columns stay integers; their names are in the descriptions. The
Responsible-AI fields (`rai:*`) come from `cards.rai`, the same statements as the card's.
"""
from __future__ import annotations

import json
from pathlib import Path

from builder.core.schema import PUBLISHED_COLUMNS, Column, version_disease_names
from cards import rai, text
from cards.card import tags
from cards.sources import card_license

CONFORMS_TO = ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
LICENSE_URLS = {"apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
                "cc-by-nc-sa-3.0": "https://creativecommons.org/licenses/by-nc-sa/3.0/"}

TYPES = {"sc:Text": "TEXT", "sc:Integer": "INTEGER", "sc:Float": "FLOAT", "sc:Boolean": "BOOL",
         "sc:ImageObject": "IMAGE_OBJECT"}  # Croissant dataType -> mlcroissant DataType member

def croissant_metadata(configs: list[str], url: str | None, facts: text.CardFacts):
    import mlcroissant as mlc

    distribution, record_sets = [], []
    diseases = version_disease_names(facts.records)
    for config in configs:
        fs_id = f"parquet-files-for-config-{config}"
        pattern = "data/*/*.parquet" if config == "all" else f"data/{config}/*.parquet"
        distribution.append(mlc.FileSet(id=fs_id, name=fs_id, encoding_formats=["application/x-parquet"],
                                        includes=[pattern], description=f"Parquet shards of config {config}"))
        record_sets.append(mlc.RecordSet(id=config, name=config, description=f"cgDDI config {config}",
                                         fields=[_field(mlc, config, fs_id, c, diseases)
                                                 for c in PUBLISHED_COLUMNS]))
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


def _field(mlc, record_set: str, fs_id: str, col: Column, diseases: tuple[str, ...], parent: str | None = None):
    fid = f"{record_set}/{parent + '/' if parent else ''}{col.name}"
    kw = {"id": fid, "name": col.name, "description": description(col, diseases)}
    if col.is_list:
        kw.update(is_array=True, array_shape="-1")
    if col.members:
        return mlc.Field(**kw, sub_fields=[_field(mlc, record_set, fs_id, m, diseases, parent=col.name)
                                           for m in col.members])
    return mlc.Field(**kw, source=_source(mlc, fs_id, col, parent),
                     data_types=[getattr(mlc.DataType, TYPES[col.croissant_type])])


def description(col: Column, diseases: tuple[str, ...]) -> str:
    """The column's one-line description, plain text; a ClassLabel's with the names its integers index."""
    plain = text.strip_markdown(col.description)
    if col.labels is None:
        return plain
    return f"{plain}. ClassLabel: an integer index into {list(col.labels or diseases)}"


def _source(mlc, fs_id: str, col: Column, parent: str | None):
    if parent:  # a struct member: the parent column, then its key
        return mlc.Source(file_set=fs_id, extract=mlc.Extract(column=parent),
                          transforms=[mlc.Transform(json_path=col.name)])
    if col.name == "split":  # from the path: data/<config>/<split>-XXXXX-of-YYYYY.parquet
        return mlc.Source(file_set=fs_id, extract=mlc.Extract(file_property="fullpath"),
                          transforms=[mlc.Transform(regex=r"^.*/(train|validation|test)-\d{5}-of-\d{5}\.parquet$")])
    if col.dtype == "image":
        return mlc.Source(file_set=fs_id, extract=mlc.Extract(column=col.name),
                          transforms=[mlc.Transform(json_path="bytes")])
    return mlc.Source(file_set=fs_id, extract=mlc.Extract(column=col.name))


def _semver(version: str) -> str:
    parts = (version.split(".") + ["0", "0"])[:3]
    return ".".join(parts)


def write_croissant(out_dir: Path, configs: list[str], url: str | None, facts: text.CardFacts) -> str:
    """Write `croissant.json` (sorted keys: same inputs, same bytes); returns its relative path."""
    meta = croissant_metadata(configs, url, facts)
    (out_dir / "croissant.json").write_text(json.dumps(meta.to_json(), indent=2, sort_keys=True) + "\n")
    return "croissant.json"
