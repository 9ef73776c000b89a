"""Audit: clean versions pass, planted leaks and tampered shards fail with exit 1 and a JSON report."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from builder.published.audit import audit_folder, near_pairs
from builder.cli import main
from tests.publish_helpers import build_version, copy_published, plant_leak, plant_near_duplicate


@pytest.fixture()
def store(fitz_v11, tmp_path):
    """A writable copy of the session's 20-photo store (`build_version` publishes it after a change)."""
    return copy_published(fitz_v11, tmp_path / "copy")[0]


@pytest.fixture()
def published(fitz_v11, tmp_path):
    """(store, version folder): a writable copy of the session's clean 20-photo version."""
    return copy_published(fitz_v11, tmp_path / "copy")


def _audit(folder, tmp_path, *extra) -> tuple[int, dict]:
    report = tmp_path / "report.json"
    rc = main(["audit", str(folder), "--report", str(report), *extra])
    return rc, json.loads(report.read_text())


def test_clean_version_passes_with_balance_tables(published, tmp_path, capsys):
    store, folder = published
    rc, report = _audit(folder, tmp_path)
    assert rc == 0, capsys.readouterr().out
    assert report["ok"] and report["leakage"]["rows"] == 0 and report["integrity"]["ok"]
    assert report["rows"] == len(store.records())
    assert sum(c["rows"] for c in report["balance"]["by_split_tone"]) == report["rows"]
    assert report["test_ids"] == {"source": "inferred", "count": 4}
    assert "CLEAN" in capsys.readouterr().out


def test_planted_lineage_leak_exits_1(store, tmp_path):
    victim = plant_leak(store)
    rc, report = _audit(build_version(store, tmp_path / "out"), tmp_path)
    assert rc == 1
    assert report["leakage"]["by_reason"].get("lesion_mapped_from_test_source") == 1
    assert [i["sample_id"] for i in report["leakage"]["items"]
            if i["reason"] == "lesion_mapped_from_test_source"] == [victim]


@pytest.mark.parametrize("exact", [True, False])
def test_duplicates_across_splits_are_leaks(store, tmp_path, exact):
    copy = plant_near_duplicate(store, exact=exact)
    rc, report = _audit(build_version(store, tmp_path / "out"), tmp_path)
    reason = "exact_duplicate_across_splits" if exact else "near_duplicate_across_splits"
    assert rc == 1
    assert {i["sample_id"] for i in report["leakage"]["items"] if i["reason"] == reason} == {copy}


def test_test_ids_file_flags_semantic_models_that_saw_test_images(published, tmp_path):
    store, folder = published
    seen = next(r for r in store.records() if r.kind == "semantic").source_ids[0]
    ids = tmp_path / "test_ids.txt"
    ids.write_text(f"# PatchAlign24 test split\n{seen}\n")
    rc, report = _audit(folder, tmp_path, "--test-ids", str(ids))
    assert rc == 1
    assert report["test_ids"] == {"source": "file", "count": 1}
    assert report["leakage"]["by_reason"]["semantic_model_saw_test_source"] == 3


def test_tampered_shard_fails_audit_and_load(published, tmp_path):
    import datasets

    _, folder = published
    shard = folder / "data" / "lesion_mapped" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)  # a valid Parquet file, one row short
    report = audit_folder(folder)
    problems = {(p["problem"], p["path"]) for p in report.integrity}
    rel = "data/lesion_mapped/train-00000-of-00001.parquet"
    assert {("sha256_mismatch", rel)} <= problems and not report.ok
    with pytest.raises(Exception, match="(?i)split|examples|size"):
        datasets.load_dataset(str(folder), name="lesion_mapped", cache_dir=str(tmp_path / "cache"))


def test_corrupt_bytes_are_reported_not_crashed(published, tmp_path):
    _, folder = published
    shard = folder / "data" / "healthy" / "test-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    report = audit_folder(folder)
    problems = {p["problem"] for p in report.integrity}
    assert {"sha256_mismatch"} <= problems and not report.ok


def test_near_pairs_threshold_is_inclusive():
    import numpy as np

    a = np.array([0b0], dtype=np.uint64)
    b = np.array([0b111111, 0b1111111, 0xFFFF], dtype=np.uint64)  # 6, 7 and 16 bits away
    assert near_pairs(a, b, 6) == [(0, 0, 6)]
    assert near_pairs(a, b, 7) == [(0, 0, 6), (0, 1, 7)]


def test_test_ids_read_lists_and_the_builds_splits_csv(tmp_path):
    from builder.core.splits_file import read_test_ids

    listing = tmp_path / "ids.txt"
    listing.write_text("ddi:000001  # held out\n\nddi:000002\n")
    splits = tmp_path / "splits.csv"
    splits.write_text("source_id,split\nddi:000001,test\nddi:000002,train\nddi:000003,test\n")
    assert read_test_ids(listing) == {"ddi:000001", "ddi:000002"}
    assert read_test_ids(splits) == {"ddi:000001", "ddi:000003"}


def test_workers_give_the_same_report(store, tmp_path):
    plant_near_duplicate(store)
    folder = build_version(store, tmp_path / "out", shard_mb=0.05)
    one, two = audit_folder(folder).to_json(), audit_folder(folder, workers=2).to_json()
    assert one == two and one["leakage"]["rows"] == 1


def test_near_duplicates_sharing_a_source_are_derivation_not_leaks(store, tmp_path):
    records = store.records()
    test = next(r for r in records if r.kind == "healthy" and r.split == "test")
    copy = plant_near_duplicate(store)
    records = store.records()
    for r in records:
        if r.sample_id == copy:
            r.source_ids = sorted(set(test.source_ids) | {"fitz17k:train-base"})
    # a train row sharing a test source is still a lineage leak; the near duplicate itself is not double-counted
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    report = audit_folder(build_version(store, tmp_path / "out"))
    reasons = {i["reason"] for i in report.leaks if i["sample_id"] == copy}
    assert reasons == {"semantic_model_saw_test_source"} and report.derivation_pairs >= 1


def test_extra_parquet_served_by_load_dataset_fails_audit(published, tmp_path):
    """An extra `data/healthy/train-extra.parquet` passed audit while load_dataset served its
    planted test row. Audit now reads every file the card's globs match and lists every unlisted file."""
    import datasets

    _, folder = published
    test_shard = pq.read_table(folder / "data" / "healthy" / "test-00000-of-00001.parquet")
    planted = test_shard.slice(0, 1)
    pq.write_table(planted, folder / "data" / "healthy" / "train-extra.parquet")
    sid = planted.column("sample_id")[0].as_py()
    served = datasets.load_dataset(str(folder), name="healthy", cache_dir=str(tmp_path / "cache"),
                                   verification_mode="no_checks")
    assert sid in served["train"]["sample_id"]  # the case is real: the file is served as train
    rc, report = _audit(folder, tmp_path)
    assert rc == 1 and not report["ok"]
    problems = {(p["problem"], p["path"]) for p in report["integrity"]["problems"]}
    assert ("unlisted_file", "data/healthy/train-extra.parquet") in problems
    assert ("split_column_mismatch", sid) in problems  # its rows were read: a test row in train files
    assert any(p == "card_split_size_mismatch" for p, _ in problems)
    # Listed in the manifest too (what made the old audit say CLEAN: it read only shard-named files).
    from builder.build.manifest import relist_files

    relist_files(folder, ["data/healthy/train-extra.parquet"])
    rc, report = _audit(folder, tmp_path)
    problems = {(p["problem"], p["path"]) for p in report["integrity"]["problems"]}
    assert rc == 1 and ("split_column_mismatch", sid) in problems
    assert not any(p == "unlisted_file" for p, _ in problems)


def test_any_file_not_in_the_manifest_fails_integrity(published, tmp_path):
    _, folder = published
    (folder / "notes.txt").write_text("hello\n")
    (folder / "data" / "semantic" / "extra").mkdir(parents=True)
    (folder / "data" / "semantic" / "extra" / "x.bin").write_bytes(b"\0")
    report = audit_folder(folder)
    assert {(p["problem"], p["path"]) for p in report.integrity} == {
        ("unlisted_file", "notes.txt"), ("unlisted_file", "data/semantic/extra/x.bin")}


def test_unreadable_manifest_or_card_is_an_integrity_problem(published, tmp_path):
    _, folder = published
    (folder / "README.md").write_bytes(b"---\nconfigs: [\xe9\n---\n")
    report = audit_folder(folder)
    assert "unreadable_card" in {p["problem"] for p in report.integrity} and not report.ok
    (folder / "manifest.json").write_bytes(b"{not json")
    report = audit_folder(folder)
    assert "unreadable_manifest" in {p["problem"] for p in report.integrity} and not report.ok


def test_test_ids_file_with_a_non_utf8_byte_names_line_and_offset(tmp_path, capsys):
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"ddi:000001\nddi:00\xff002\n")
    folder = tmp_path / "v"
    (folder / "data").mkdir(parents=True)
    assert main(["audit", str(folder), "--test-ids", str(ids)]) == 2
    err = capsys.readouterr().err
    assert f"{ids} line 2, byte offset 17" in err and "not UTF-8" in err


def test_masks_are_checked_against_their_rows(store, tmp_path):
    """A lesion-mapped row's mask without a lesion and a semantic row with a mask fail integrity."""
    import numpy as np

    records = store.records()
    mapped = next(r for r in records if r.kind == "lesion_mapped")
    store.put_segmentation(mapped.sample_id, np.zeros_like(store.read_segmentation(mapped.sample_id)))
    semantic = next(r for r in records if r.kind == "semantic")
    semantic.mask_path = mapped.mask_path
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    rc, report = _audit(build_version(store, tmp_path / "out"), tmp_path)
    bad = {p["detail"].split("'")[1]: p["detail"] for p in report["integrity"]["problems"] if p["problem"] == "bad_mask"}
    assert rc == 1 and set(bad) == {mapped.sample_id, semantic.sample_id}
    assert "has no lesion pixels" in bad[mapped.sample_id] and "a semantic row carries a mask" in bad[semantic.sample_id]
