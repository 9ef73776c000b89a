"""The paper's classification subset at export: semantic rows of diseases with more than 10 training photos."""
from __future__ import annotations

import csv
import json

from builder.cli import main
from tests.publish_helpers import build_version, make_store


def _store_with_counts(shared_data, root, counts):
    """The publishing store, its three semantic rows carrying `training_photos` (None: a row without it)."""
    store = make_store(shared_data, root)
    records = store.records()
    semantic = sorted((r for r in records if r.kind == "semantic"), key=lambda r: r.sample_id)
    for rec, n in zip(semantic, counts):
        rec.params = {} if n is None else {"training_photos": n}
    (store.root / "records" / "00000.jsonl").unlink()
    store.finish_shard("00000", records, [])
    return store, {r.sample_id: n for r, n in zip(semantic, counts)}


def _export(folder, out, *extra) -> int:
    return main(["export", "patchalign", "--version", "1.1", "--folder", str(folder), "--out", str(out), *extra])


def test_min_training_photos_keeps_the_papers_subset(shared_data, tmp_path):
    store, counts = _store_with_counts(shared_data, tmp_path / "store", [5, 10, 11])
    folder = build_version(store, tmp_path / "build")
    assert _export(folder, tmp_path / "all") == 0
    assert _export(folder, tmp_path / "paper", "--min-training-photos", "11") == 0
    every = {r["sample_id"] for r in csv.DictReader(open(tmp_path / "all" / "train.csv"))}
    paper = {r["sample_id"] for r in csv.DictReader(open(tmp_path / "paper" / "train.csv"))}
    few = {sid for sid, n in counts.items() if n <= 10}
    assert few <= every and every - paper == few
    report = json.loads((tmp_path / "paper" / "export_report.json").read_text())
    assert report["excluded"]["few_training_photos"] == 2 and report["min_training_photos"] == 11


def test_rows_without_the_count_are_refused(shared_data, tmp_path, capsys):
    store, _ = _store_with_counts(shared_data, tmp_path / "store", [None, 12, 12])
    folder = build_version(store, tmp_path / "build")
    assert _export(folder, tmp_path / "o", "--min-training-photos", "11") == 2
    assert "training_photos" in capsys.readouterr().err
    assert _export(folder, tmp_path / "o2", "--min-training-photos", "0") == 2
