"""Every view of a published row lists the same columns in the same order: a built shard's Arrow schema,
the card's features and column table, and croissant.json, all from `schema.PUBLISHED_COLUMNS`."""
from __future__ import annotations

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
