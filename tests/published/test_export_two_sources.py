"""Exports, audit and evaluate of a version built over two sources (the `two_sources` session build: a
DDI-layout folder and Fitzpatrick17k photos, lesion maps across them): each trainer's tone encoding stays
right per source, `--real` names its own source and holdout, a chosen holdout keeps the other source's,
and the Fitzpatrick17k layout refuses rows that have only a DDI tone group."""
from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from builder.cli import main
from builder.core.schema import SKIN_TONES, TONE_NAME_TO_DDI, fitzpatrick_to_tone
from builder.core.store import StageStore
from builder.published.trainers import TARGETS
from curation.source.metadata import read_csv_strings, table_stems
from curation.splits import stems_holdout

pytestmark = pytest.mark.slow  # the session's two-source build


def _export(root, out, *extra) -> int:
    return main(["-q", "export", *extra, "--version", "1.2", "--build-out", str(root / "out"), "--out", str(out)])


def _rows(out, name="train.csv"):
    return list(csv.DictReader(open(out / name)))


def _published(root) -> dict:
    """sample_id -> (tone name, Fitzpatrick type or None) as published."""
    got = {}
    for f in sorted((root / "out" / "1.2" / "data").rglob("*.parquet")):
        for r in pq.read_table(f, columns=["sample_id", "skin_tone", "fitzpatrick"]).to_pylist():
            tone = r["skin_tone"] if isinstance(r["skin_tone"], str) else SKIN_TONES[r["skin_tone"]]
            got[r["sample_id"]] = (tone, r["fitzpatrick"])
    return got


def _split_of(root) -> dict:
    return {r["source_id"]: r["split"] for r in
            read_csv_strings(root / "out" / ".work" / "1.2" / "splits.csv").iter_rows(named=True)}


def _sources(row) -> set[str]:
    return set(row["source_ids"].split(";"))


@pytest.mark.parametrize("target", ["patchalign", "fairdisco"])
def test_ddi_layout_writes_both_sources_in_the_trainers_tone_groups(two_sources, tmp_path, target):
    _, _, root = two_sources
    out = tmp_path / target
    assert _export(root, out, target, "--include-healthy") == 0  # healthy rows: one source each
    published, split_of, t = _published(root), _split_of(root), TARGETS[target]
    train, test = _rows(out), _rows(out, "test.csv")
    report = json.loads((out / "export_report.json").read_text())
    assert set(report["rows_by_lineage"]) == {"ddi", "fitz17k", "ddi+fitz17k"}
    assert report["sources"] == ["ddi", "fitz17k"]
    for r in train + test:
        tone, fitz = published[r["sample_id"]]
        assert int(r["skin_tone"]) == TONE_NAME_TO_DDI[tone]
        assert int(r["fitzpatrick"]) == t.fitzpatrick[int(r["skin_tone"])]
        if fitz is not None:  # built on a Fitzpatrick17k photo: its type's pair is the group
            assert tone == fitzpatrick_to_tone(fitz)
        assert t.group(int(r["fitzpatrick"])) == SKIN_TONES.index(tone)  # the trainer's evaluation groups
    for r in train:
        assert all(split_of[s] != "test" for s in _sources(r)), r["sample_id"]
    assert {s.split(":")[0] for r in test for s in _sources(r)} == {"ddi", "fitz17k"}
    assert "## Sources" in (out / "TRAINING.md").read_text() and "12 / 34 / 56" in (out / "TRAINING.md").read_text()


@pytest.mark.parametrize("which", ["ddi", "fitz"])
def test_real_rows_carry_their_own_source_and_holdout(two_sources, tmp_path, which):
    ddi, _, root = two_sources
    out = tmp_path / which
    assert _export(root, out, "fairdisco", "--real", str(root / which)) == 0
    train, test = _rows(out), _rows(out, "test.csv")
    reals = [r for r in train + test if r["kind"] == "real"]
    name = {"ddi": "ddi", "fitz": "fitz17k"}[which]
    assert reals and all(r["source_ids"].startswith(f"{name}:") for r in reals)  # not the other source's prefix
    if which == "ddi":
        held = {f"ddi:{s}" for s in ddi["holdout"]}
    else:
        held = set(stems_holdout(table_stems(read_csv_strings(root / "fitz" / "metadata.csv")), "fitz17k"))
    assert {r["source_ids"] for r in test} == {r["source_ids"] for r in reals} & held and test
    split_of = _split_of(root)
    for r in train:
        assert not _sources(r) & held and all(split_of.get(s) != "test" for s in _sources(r)), r["hasher"]


def test_a_seeded_fold_over_one_source_keeps_the_others_holdout(two_sources, tmp_path):
    _, result, root = two_sources
    out = tmp_path / "fold"
    assert _export(root, out, "patchalign", "--real", str(root / "fitz"), "--holdout-seed", "36") == 0
    ddi_test = {s for s, sp in _split_of(root).items() if sp == "test" and s.startswith("ddi:")}
    report = json.loads((out / "export_report.json").read_text())
    assert f"the other sources keep the build's holdout ({len(ddi_test)} photos)" in report["holdout"]["name"]
    assert any(set(r.source_ids) & ddi_test for r in result.records if r.kind == "lesion_mapped")
    train = _rows(out)
    assert train and not any(_sources(r) & ddi_test for r in train)  # a DDI test photo's lesion stays out


def test_fitzpatrick17k_layout_refuses_tone_groups_unless_sources_are_chosen(two_sources, tmp_path, capsys):
    _, _, root = two_sources
    assert _export(root, tmp_path / "refused", "patchalign", "--layout", "fitzpatrick17k") == 2
    err = capsys.readouterr().err
    assert "--sources fitz17k" in err and "--layout ddi" in err and len(err.strip().splitlines()) == 1
    out = tmp_path / "fitz"
    assert _export(root, out, "patchalign", "--layout", "fitzpatrick17k", "--sources", "fitz17k",
                   "--include-healthy") == 0  # every lesion row here crosses the sources: healthy rows only
    published = _published(root)
    rows = _rows(out) + _rows(out, "test.csv")
    assert rows and all(s.startswith("fitz17k:") for r in rows for s in _sources(r))
    for r in rows:
        assert int(r["fitzpatrick"]) == published[r["sample_id"]][1]  # the type 1-6 of its photo
    assert _export(root, tmp_path / "bad", "patchalign", "--sources", "ham10000") == 2
    assert "not among the version's sources (ddi, fitz17k)" in capsys.readouterr().err


def test_generic_exports_and_audit_accept_the_version(two_sources, tmp_path):
    _, result, root = two_sources
    lesions = {r.sample_id for r in result.records if r.disease != "healthy"}
    assert _export(root, tmp_path / "if", "imagefolder", "--label", "skin_tone") == 0
    meta = [json.loads(line) for split in ("train", "validation", "test")
            for line in (tmp_path / "if" / split / "metadata.jsonl").read_text().splitlines()]
    assert {m["sample_id"] for m in meta} == lesions
    assert {s.split(":")[0] for m in meta for s in m["source_ids"].split(";")} == {"ddi", "fitz17k"}
    assert all(m["label"] == m["skin_tone"] for m in meta)  # both sources' rows in the same three tone names
    assert _export(root, tmp_path / "wds", "webdataset") == 0 and list((tmp_path / "wds").glob("test-*.tar"))
    splits = root / "out" / ".work" / "1.2" / "splits.csv"  # both sources' test photos
    assert main(["audit", str(root / "out" / "1.2"), "--test-ids", str(splits), "--report",
                 str(tmp_path / "audit.json")]) == 0
    report = json.loads((tmp_path / "audit.json").read_text())
    assert report["leakage"]["rows"] == 0 and report["integrity"]["ok"]
    assert report["test_ids"]["count"] == sum(sp == "test" for sp in _split_of(root).values())


def test_evaluate_reads_both_sources_real_photos(two_sources, tmp_path):
    from generation.tiny import save_tiny_vision_backbone
    from tests.demo_build import copy_out

    _, result, _ = two_sources
    out = copy_out(result, tmp_path / "out")  # evaluate writes into the version
    model = save_tiny_vision_backbone(tmp_path / "tinyvit")
    assert main(["-q", "evaluate", "--version", "1.2", "--build-out", str(out), "--model", str(model),
                 "--steps", "3", "--batch-size", "8", "--n-boot", "20"]) == 0
    res = json.loads((out / "1.2" / "evaluation.json").read_text())
    real = [r for r in StageStore(out / ".work" / "1.2" / "real").records() if r.kind == "real"]
    assert {r.source_ids[0].split(":")[0] for r in real} == {"ddi", "fitz17k"}
    assert res["counts"]["real"] == len(real) and res["counts"]["real_without_split"] == 0
    assert res["utility"]  # trained on both sources' real train photos, tested on both holdouts
