"""Every view of a published row lists the same columns in the same order: a built shard's Arrow schema,
the card's features and column table, and croissant.json, all from `schema.PUBLISHED_COLUMNS`."""
from __future__ import annotations

import ast
import json
import re

import pyarrow.parquet as pq
import pytest
import yaml

from builder.core.schema import COLUMNS, disease_names
from tests.publish_helpers import build_version, make_store


@pytest.fixture(scope="module")
def demo(shared_data, tmp_path_factory):
    store = make_store(shared_data, tmp_path_factory.mktemp("demo"), limit=6, source="demo")
    return store, build_version(store, tmp_path_factory.mktemp("demo-out"))


def _card_table(card: str) -> list[str]:
    section = card.split("## Structure", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)


def test_shards_card_and_croissant_list_the_same_columns_in_order(demo):
    _, built = demo
    shards = sorted(built.glob("data/*/*.parquet"))
    assert shards
    for shard in shards:
        assert tuple(pq.read_schema(shard).names) == COLUMNS, shard
    card = (built / "README.md").read_text()
    front = yaml.safe_load(card.split("---", 2)[1])
    for info in front["dataset_info"]:
        assert tuple(f["name"] for f in info["features"]) == COLUMNS, info["config_name"]
    record_sets = json.loads((built / "croissant.json").read_text())["recordSet"]
    assert {r["@id"] for r in record_sets} == {i["config_name"] for i in front["dataset_info"]}
    for rs in record_sets:
        assert tuple(f["name"] for f in rs["field"]) == COLUMNS, rs["@id"]
    assert tuple(_card_table(card)) == COLUMNS


def test_croissant_types_are_the_stored_types(demo):
    import mlcroissant as mlc

    store, built = demo
    fields = {f["name"]: f for f in json.loads((built / "croissant.json").read_text())["recordSet"][0]["field"]}
    assert fields["disease"]["dataType"] == "sc:Integer" and fields["has_lesion"]["dataType"] == "sc:Boolean"
    names = disease_names(r.disease for r in store.records())
    assert str(list(names)) in fields["disease"]["description"]
    assert fields["source_ids"]["cr:isArray"] is True and fields["auto_masks"]["cr:isArray"] is True
    assert [s["name"] for s in fields["generator"]["subField"]] == ["backend", "model_id", "revision", "adapters"]
    ds = mlc.Dataset(jsonld=str(built / "croissant.json"))  # validates, then reads through mlcroissant
    by_id = {r.sample_id: r for r in store.records()}
    rows = list(ds.records("all"))
    assert len(rows) == len(by_id) - sum(r.kind == "real" for r in by_id.values())
    for row in rows:
        rec = by_id[row["all/sample_id"].decode()]
        assert bool(row["all/has_lesion"]) is (rec.kind != "healthy")
        assert names[int(row["all/disease"])] == rec.disease
    assert {bool(row["all/has_lesion"]) for row in rows} == {False, True}


def _disease_views(folder) -> set[tuple[str, ...]]:
    """The `disease` ClassLabel names as every shard, the card's features and croissant.json give them."""
    from builder.core.schema import shard_disease_names

    views = {shard_disease_names(pq.read_schema(p)) for p in sorted(folder.glob("data/*/*.parquet"))}
    front = yaml.safe_load((folder / "README.md").read_text().split("---", 2)[1])
    for info in front["dataset_info"]:
        names = next(f["dtype"]["class_label"]["names"] for f in info["features"] if f["name"] == "disease")
        views.add(tuple(names[str(i)] for i in range(len(names))))
    for rs in json.loads((folder / "croissant.json").read_text())["recordSet"]:
        desc = next(f["description"] for f in rs["field"] if f["name"] == "disease")
        views.add(tuple(ast.literal_eval(desc.split("an integer index into ", 1)[1])))
    return views


def test_disease_names_are_the_built_sources_classes(demo_v11, fitz_v11):
    from builder.core.schema import joined_diseases

    # the demo source is labelled with DDI's joined classes: all 65 of them (every DDI version shares them)
    assert _disease_views(demo_v11.out_dir) == {joined_diseases() + ("healthy",)}
    store, folder = fitz_v11
    present = {r.disease for r in store.records()} - {"healthy"}
    assert present - set(joined_diseases())  # Fitzpatrick17k's own labels, not DDI's
    assert _disease_views(folder) == {tuple(sorted(present)) + ("healthy",)}


def test_croissant_types_the_mask_as_an_image(demo):
    _, built = demo
    for rs in json.loads((built / "croissant.json").read_text())["recordSet"]:
        mask = next(f for f in rs["field"] if f["name"] == "mask")
        assert mask["dataType"] == "sc:ImageObject" and mask["source"]["transform"] == {"jsonPath": "bytes"}
