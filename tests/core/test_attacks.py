"""The work folder is trusted only as far as it is checked: a stage's records and images are verified
against the digests its marker recorded; damage is named, and the shard counts as not done."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from builder.core.errors import BuildError
from builder.core.schema import Record, make_sample_id
from builder.core.store import StageStore, encode_png


@pytest.fixture()
def store(tmp_path):
    s = StageStore(tmp_path / "healthy")
    recs = []
    for k in range(3):
        png = encode_png(np.full((16, 16, 3), 40 * k, np.uint8))
        sid = make_sample_id("healthy", str(k), {"k": k})
        recs.append(Record(sample_id=sid, kind="healthy", skin_tone="light", malignant=False, disease="healthy",
                           source_ids=[f"demo:{k}"], image_path=s.put_image(sid, png), split="train"))
    s.finish_shard("00000", recs, [], fingerprint="fp")
    assert s.shard_done("00000", "fp")
    return s


def test_an_edited_record_is_named_and_redone(store, caplog):
    path = store.root / "records" / "00000.jsonl"
    path.write_text(path.read_text().replace('"light"', '"dark"', 1))
    with caplog.at_level(logging.WARNING):
        assert not store.shard_done("00000", "fp")
    assert "records/00000.jsonl was edited or damaged" in caplog.text


def test_a_truncated_records_file_is_named_not_a_traceback(store):
    path = store.root / "records" / "00000.jsonl"
    path.write_bytes(path.read_bytes()[:-40])
    assert not store.shard_done("00000", "fp")
    with pytest.raises(BuildError, match=r"00000\.jsonl line 3 is not a whole record"):
        store.records()


def test_a_damaged_image_is_named_and_its_shard_undone(store, caplog):
    rec = store.records()[0]
    path = store.root / rec.image_path
    path.write_bytes(path.read_bytes()[:-20])  # truncated
    with caplog.at_level(logging.WARNING):
        assert not store.shard_done("00000", "fp")
    assert f"{rec.image_path} is missing or changed size" in caplog.text
    data = bytearray(store.read_image_bytes(store.records()[1]))
    data[-30] ^= 1  # same size, other bytes
    (store.root / store.records()[1].image_path).write_bytes(bytes(data))
    with pytest.raises(BuildError, match=store.records()[1].image_path):
        StageStore(store.root).read_image_bytes(store.records()[1])
    assert not (store.root / "markers" / "00000.json").exists()  # the next run redoes the shard
    marker_less = StageStore(store.root)
    assert not marker_less.shard_done("00000", "fp")


def test_markers_record_digests_of_what_the_shard_wrote(store):
    marker = json.loads((store.root / "markers" / "00000.json").read_text())
    assert marker["records"] == 3 and len(marker["images"]) == 3 and len(marker["records_sha256"]) == 64
