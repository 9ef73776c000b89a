"""Publishing: size-targeted shards, byte-identical rebuilds, the card, croissant.json and the manifest."""
from __future__ import annotations

import json

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from builder.core.errors import BuildError
from builder.core.schema import KINDS
from builder.build.shards import ROW_GROUP_ROWS
from tests.publish_helpers import build_version, make_store, plant_leak


@pytest.fixture(scope="module")
def store(shared_data, tmp_path_factory):
    return make_store(shared_data, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def built(store, tmp_path_factory):
    return build_version(store, tmp_path_factory.mktemp("out"))


def _front(folder) -> dict:
    return yaml.safe_load((folder / "README.md").read_text().split("---", 2)[1])


def test_rebuild_is_byte_identical(store, built, tmp_path):
    again = build_version(store, tmp_path / "again")
    names = sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again).as_posix() for p in again.rglob("*") if p.is_file())
    for name in names:
        assert (built / name).read_bytes() == (again / name).read_bytes(), name


def test_size_targeted_shards_keep_png_bytes(store, tmp_path):
    folder = build_version(store, tmp_path / "out", shard_mb=0.03)
    shards = sorted(folder.glob("data/lesion_mapped/train-*.parquet"))
    assert len(shards) > 1
    assert all(p.name.endswith(f"-of-{len(shards):05d}.parquet") for p in shards)
    assert [p.name[6:11] for p in shards] == [f"{i:05d}" for i in range(len(shards))]
    by_id = {r.sample_id: r for r in store.records()}
    for p in shards:
        table = pq.read_table(p)
        images = table.column("image").to_pylist()
        assert sum(len(i["bytes"]) for i in images) <= 0.03e6 or len(images) == 1
        for sid, img in zip(table.column("sample_id").to_pylist(), images):
            assert img["bytes"] == store.read_image_bytes(by_id[sid])  # never re-encoded
        meta = pq.ParquetFile(p).metadata
        assert all(meta.row_group(g).num_rows <= ROW_GROUP_ROWS for g in range(meta.num_row_groups))
        col = [meta.row_group(0).column(c) for c in range(meta.num_columns)]
        assert next(c for c in col if c.path_in_schema == "image.bytes").compression == "UNCOMPRESSED"
        assert next(c for c in col if c.path_in_schema == "sample_id").compression == "ZSTD"
    ds = datasets.load_dataset(str(folder), "lesion_mapped", split="train", cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == sum(r.kind == "lesion_mapped" and r.split == "train" for r in store.records())


def test_card_yaml_and_sections(store, built, tmp_path):
    front = _front(built)
    for key in ("license", "task_categories", "tags", "size_categories", "pretty_name", "source_datasets"):
        assert front.get(key), key
    assert front["license"] == "cc-by-nc-sa-3.0" and (built / "LICENSE.md").is_file()
    configs = {c["config_name"]: c for c in front["configs"]}
    assert set(configs) == {"all", "healthy", "lesion_mapped", "semantic"} and configs["all"]["default"]
    records = store.records()
    for info in front["dataset_info"]:
        name = info["config_name"]
        for sp in info["splits"]:
            assert sp["num_examples"] == sum(r.split == sp["name"] and name in ("all", r.kind) for r in records)
        names = {f["name"]: f for f in info["features"]}
        assert names["skin_tone"]["dtype"]["class_label"]["names"] == {"0": "light", "1": "medium", "2": "dark"}
    text = (built / "README.md").read_text()
    for section in ("## How it was built", "## Structure", "## Splits", "## Lineage and leakage audit",
                    "## Usage", 'revision="v1.1"', "## Terms", "## Source", "## Source pixels in the images",
                    "## Bias, risks and limitations", "## Citations", "Audit at build time: **clean**"):
        assert section in text, section
    plots = sorted(p.relative_to(built).as_posix() for p in built.glob("plots/*.png"))
    assert plots == ["plots/distribution.png"] + [f"plots/samples_{k}.png" for k in KINDS[1:]]
    assert all(f"]({p})" in text for p in plots)
    ds = datasets.load_dataset(str(built), cache_dir=str(tmp_path / "c"))  # the default config: all
    assert sum(d.num_rows for d in ds.values()) == len(records)


def test_croissant_validates_and_reads(store, built):
    import mlcroissant as mlc

    dataset = mlc.Dataset(jsonld=str(built / "croissant.json"))  # raises ValidationError when invalid
    rows = list(dataset.records("healthy"))
    healthy = sorted(r.sample_id for r in store.records() if r.kind == "healthy")
    assert sorted(r["healthy/sample_id"].decode() for r in rows) == healthy
    assert {r["healthy/split"].decode() for r in rows} == {"train", "validation", "test"}
    assert rows[0]["healthy/image"].size == (64, 64)


def test_streaming_reads_the_default_config(store, built):
    stream = datasets.load_dataset(str(built), split="test", streaming=True)
    ids = [row["sample_id"] for row in stream]
    assert sorted(ids) == sorted(r.sample_id for r in store.records() if r.split == "test")


def test_manifest_lists_every_file(built):
    import hashlib

    m = json.loads((built / "manifest.json").read_text())
    assert m["version"] == "1.1" and len(m["config_hash"]) == 16 and m["libraries"]["pyarrow"]
    listed = {f["path"]: f for f in m["files"]}
    on_disk = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(listed) == on_disk
    for path, f in listed.items():
        data = (built / path).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["bytes"] == len(data)
    assert m["counts"]["all"] == {s: sum(v.get(s, 0) for k, v in m["counts"].items() if k != "all")
                                  for s in m["counts"]["all"]}
    assert m["stages"] == [{"stage": "fixture", "done": 43, "rejected": {}}]
    assert m["audit"]["ok"] and m["audit"]["leakage"]["rows"] == 0


def test_other_content_for_an_existing_version_needs_overwrite(shared_data, tmp_path):
    store = make_store(shared_data, tmp_path / "store")
    folder = build_version(store, tmp_path / "out")
    before = (folder / "manifest.json").read_bytes()
    build_version(store, tmp_path / "out")  # same content: fine
    plant_leak(store)
    with pytest.raises(BuildError, match="already holds version 1.1 with other content.*--overwrite"):
        build_version(store, tmp_path / "out")
    assert (folder / "manifest.json").read_bytes() == before
    build_version(store, tmp_path / "out", overwrite=True)
    assert (folder / "manifest.json").read_bytes() != before


def test_shards_are_written_as_datasets_writes_parquet_for_the_hub(built):
    """Content-defined chunking (its settings in the key-value metadata, as `datasets` records them) and
    the page index; the PNG columns uncompressed and PLAIN, as `datasets` stores its Image columns."""
    from datasets import config as ds_config

    from builder.build.shards import CDC_OPTIONS

    assert CDC_OPTIONS == ds_config.DEFAULT_CDC_OPTIONS
    shards = sorted(built.glob("data/*/*.parquet"))
    assert shards
    for path in shards:
        meta = pq.ParquetFile(path).metadata
        assert json.loads(meta.metadata[b"content_defined_chunking"]) == ds_config.DEFAULT_CDC_OPTIONS
        for g in range(meta.num_row_groups):
            chunks = {meta.row_group(g).column(c).path_in_schema: meta.row_group(g).column(c)
                      for c in range(meta.num_columns)}
            assert all(c.has_offset_index for c in chunks.values())  # the page index: page locations
            assert chunks["sample_id"].has_column_index  # and min/max per page where statistics are kept
            for png in ("image.bytes", "mask.bytes"):
                assert chunks[png].compression == "UNCOMPRESSED"
                assert "PLAIN" in chunks[png].encodings and "PLAIN_DICTIONARY" not in chunks[png].encodings
