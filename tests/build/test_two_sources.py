"""Two sources in one build: a DDI-layout folder (DDI's real table and sDDI masks, stand-in photos) and
Fitzpatrick17k photos. Ids keep each source's prefix, each source keeps its own holdout, lesion maps go
both ways, nothing derived from a test photo of either source is train, and the card, licence and
manifest name both sources."""
from __future__ import annotations

import dataclasses
import json
import types

import pytest

from builder.build import BuildOptions
from builder.build.steps import BuildContext, SourceStep, source_inputs
from builder.cli import main
from builder.core.config import load_config
from builder.core.errors import ConfigError, SourceError
from builder.core.store import StageStore
from curation.source.ingest import ingest_source, plan_ingest
from curation.source.metadata import merge_tables, read_csv_strings, read_source_table, table_stems
from curation.splits import stems_holdout
from tests.downstream_fixtures import write_ddi_source, write_two_sources

SPLIT_ORDER = ("train", "validation", "test")


def _sources(shared_data, root, fitz_rows: int = 39):
    return write_two_sources(shared_data, root, fitz_rows)


def test_the_source_step_reads_each_source_with_its_own_holdout_and_subset(tmp_path, shared_data):
    ddi = _sources(shared_data, tmp_path)
    cfg = load_config("1.2")
    cfg = dataclasses.replace(cfg, source=dataclasses.replace(cfg.source, subset="expert_verified"))
    opts = types.SimpleNamespace(decisions=None, source=(tmp_path / "ddi", tmp_path / "fitz"),
                                 masks=(ddi["masks"], None), source_name=None, limit=None)
    ctx = BuildContext(cfg=cfg, opts=opts, layout=None)
    SourceStep().run(ctx)
    ids = {r.source_id for r in ctx.table.rows}
    assert {i.split(":")[0] for i in ids} == {"ddi", "fitz17k"}
    assert len([i for i in ids if i.startswith("fitz17k:")]) == 3  # the subset: Fitzpatrick17k's qc verdicts
    assert {i for i in ids if i.startswith("ddi:")} == {f"ddi:{s}" for s in ddi["train"] | ddi["test"] | ddi["corrupt"]}
    fitz_holdout = stems_holdout(table_stems(read_csv_strings(tmp_path / "fitz" / "metadata.csv")), "fitz17k")
    assert set(ctx.holdout) == {f"ddi:{s}" for s in ddi["holdout"]} | set(fitz_holdout)  # each its own, joined
    plan = plan_ingest(ctx.source, None, table=ctx.table)
    assert [(e["name"], e["layout"], e["subset"]) for e in plan.info["sources"]] == \
        [("ddi", "ddi", "all"), ("fitz17k", "fitz17k", "expert_verified")]
    summary = ingest_source(ctx.source, None, StageStore(tmp_path / "real"), workers=1, plan=plan)
    assert summary.done == len(ddi["train"] | ddi["test"]) + 3
    assert summary.rejected["not_in_subset"] == 36 and summary.rejected["unreadable_image"] == 2


def test_the_fingerprint_covers_every_source(tmp_path, shared_data):
    ddi = _sources(shared_data, tmp_path, fitz_rows=4)

    def info():
        tables = [read_source_table(tmp_path / "ddi", ddi["masks"]), read_source_table(tmp_path / "fitz")]
        return plan_ingest(tmp_path / "ddi", None, table=merge_tables(tables)).info

    before = info()
    photo = next((tmp_path / "fitz" / "images").iterdir())
    photo.write_bytes(photo.read_bytes() + b"\0")
    after = info()
    assert before["sources"][0] == after["sources"][0] and before["sources"][1] != after["sources"][1]
    assert before["fingerprint"] != after["fingerprint"]
    with pytest.raises(SourceError, match="two sources are named 'ddi'.*--source-name"):
        merge_tables([read_source_table(tmp_path / "ddi", ddi["masks"])] * 2)


def test_masks_and_names_pair_with_sources_in_order(tmp_path, capsys):
    opts = BuildOptions(source=(tmp_path / "a", tmp_path / "b"), masks=(tmp_path / "ma", None),
                        source_name=("x", "y"))
    got = [(s.folder.name, s.masks and s.masks.name, s.name) for s in source_inputs(opts)]
    assert got == [("a", "ma", "x"), ("b", None, "y")]
    with pytest.raises(ConfigError, match="--masks given 1 times for 2 --source folders"):
        source_inputs(BuildOptions(source=(tmp_path / "a", tmp_path / "b"), masks=tmp_path / "ma"))
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "ddi_metadata.csv").write_text("DDI_ID,DDI_file,skin_tone,malignant,disease\n")
    argv = ["build", "--version", "1.2", "--out", str(tmp_path / "out"), "--source", str(tmp_path / "a"),
            "--source", str(tmp_path / "b")]
    assert main(argv) == 2
    assert "both named 'ddi'" in capsys.readouterr().err
    assert main([*argv, "--masks", str(tmp_path / "a")]) == 2
    assert "--masks given 1 times for 2 --source folders" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before any work


@pytest.mark.slow
def test_lesion_maps_go_both_ways_between_the_sources(two_sources):
    _, result, _ = two_sources
    mapped = [r for r in result.records if r.kind == "lesion_mapped"]
    ways = {(r.donor_source_ids[0].split(":")[0], r.base_source_ids[0].split(":")[0]) for r in mapped}
    assert ways == {("ddi", "fitz17k"), ("fitz17k", "ddi")}  # across: no row within one source
    curate = next(st for st in result.stages if st["stage"] == "curate")
    assert "unknown_source" not in curate["rejected"]  # every source's ids are among the splits
    assert {s.split(":")[0] for r in result.records for s in r.source_ids} == {"ddi", "fitz17k"}


@pytest.mark.slow
def test_nothing_derived_from_a_test_photo_of_either_source_is_train(two_sources):
    ddi, result, root = two_sources
    split_of = {r["source_id"]: r["split"] for r in
                read_csv_strings(root / "out" / ".work" / "1.2" / "splits.csv").iter_rows(named=True)}
    test = {s for s, sp in split_of.items() if sp == "test"}
    assert {s for s in test if s.startswith("ddi:")} == {f"ddi:{s}" for s in ddi["test"]}  # PatchAlign24's
    assert any(s.startswith("fitz17k:") for s in test)
    for r in result.records:
        lineage = set(r.source_ids) | set(r.base_source_ids or ()) | set(r.donor_source_ids or ())
        assert r.split == max((split_of[s] for s in lineage), key=SPLIT_ORDER.index), r.sample_id
    assert any(r.split == "test" and {r.donor_source_ids[0][:3], r.base_source_ids[0][:3]} == {"ddi", "fit"}
               for r in result.records if r.kind == "lesion_mapped")


@pytest.mark.slow
def test_the_card_licence_and_manifest_name_both_sources(two_sources):
    _, result, _ = two_sources
    card = (result.out_dir / "README.md").read_text()
    licence = (result.out_dir / "LICENSE.md").read_text()
    assert "## Stanford Diverse Dermatology Images (DDI)" in licence and "## Fitzpatrick17k" in licence
    assert "license: other" in card and "ddi-fitz17k-terms" in card
    assert "`ddi` lesions onto `fitz17k` healthy bases" in card and "13,822" in card
    assert "`fitz17k` lesions onto `ddi` healthy bases" in card and "9,394" in card
    assert "`ddi`: PatchAlign24's DDI holdout" in card
    manifest = json.loads((result.out_dir / "manifest.json").read_text())
    assert [e["name"] for e in manifest["source"]["sources"]] == ["ddi", "fitz17k"]
    assert manifest["source"]["name"] == "ddi+fitz17k"


def test_two_ddi_layout_sources_get_their_own_automatic_masks(tmp_path, shared_data):
    """Two clinics' DDI-layout folders share stems (`000001.png`): their automatic masks never overwrite each other."""
    from builder.core.config import MasksConfig
    from curation.source.automasks.run import run_masks
    from curation.source.masks import read_auto_index

    empty = tmp_path / "no-masks"
    empty.mkdir()
    for name in ("a", "b"):
        write_ddi_source(shared_data, tmp_path / name, n_train=1, n_test=1)
    table = merge_tables([read_source_table(tmp_path / "a", empty), read_source_table(tmp_path / "b", empty,
                                                                                      source_name="ddi-b")])
    run_masks(table, None, tmp_path / "auto", MasksConfig(min_confidence=0.0, batch_size=8))
    entries = read_auto_index(tmp_path / "auto")
    files = {sid: e["file"] for sid, e in entries.items() if e["accepted"]}
    stems = {sid.split(":", 1)[1] for sid in files}
    assert {sid.split(":")[0] for sid in files} == {"ddi", "ddi-b"} and len(stems) < len(files)  # shared stems
    assert len(set(files.values())) == len(files) and all((tmp_path / "auto" / f).is_file() for f in files.values())
