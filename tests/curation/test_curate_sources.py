"""`curate` over two sources: one store, each source's own holdout (also from the store alone, `--real`), and
rows mixing the sources placed by the leakage rule, never rejected as `unknown_source`."""
from __future__ import annotations

from builder.cli import main
from builder.core.schema import Record
from curation.leakage import apply_splits
from curation.source.metadata import read_csv_strings, table_stems
from curation.splits import stems_holdout
from tests.curation.source.test_auto_masks import fitz_source
from tests.downstream_fixtures import write_ddi_source


def _splits(folder) -> dict[str, str]:
    return {r["source_id"]: r["split"] for r in read_csv_strings(folder / "splits.csv").iter_rows(named=True)}


def test_curate_two_sources_keeps_each_holdout_and_so_does_the_store_alone(tmp_path, shared_data, capsys):
    ddi = write_ddi_source(shared_data, tmp_path / "ddi", n_train=4, n_test=2)
    fitz_source(shared_data, tmp_path / "fitz", 10, keep_masks_every=1)
    argv = ["curate", "--version", "1.2", "--source", str(tmp_path / "ddi"), "--masks", str(ddi["masks"]),
            "--source", str(tmp_path / "fitz"), "--masks", str(tmp_path / "fitz" / "masks"), "--workers", "1"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    split_of = _splits(tmp_path / "a")
    fitz = stems_holdout(table_stems(read_csv_strings(tmp_path / "fitz" / "metadata.csv")), "fitz17k")
    test = {s for s, sp in split_of.items() if sp == "test"}
    assert test == {f"ddi:{s}" for s in ddi["test"]} | (set(fitz) & set(split_of))
    assert {s.split(":")[0] for s in split_of} == {"ddi", "fitz17k"}
    assert main(["curate", "--version", "1.2", "--real", str(tmp_path / "a" / "real"), "--out", str(tmp_path / "b"),
                 "--workers", "1"]) == 0
    assert _splits(tmp_path / "b") == split_of
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "c"), "--source-name", "x"]) == 2
    assert "--source-name: give it once per --source (2)" in capsys.readouterr().err


def _rec(sample_id: str, kind: str, sources: tuple[str, ...], **kw) -> Record:
    return Record(sample_id=sample_id, kind=kind, split=None, skin_tone="light", fitzpatrick=None, malignant=False,
                  disease="nevus", disease_raw="nevus", source_ids=sources, **kw)


def test_a_lesion_map_across_sources_takes_the_most_held_out_split_of_both():
    base = _rec("h-1", "healthy", ("fitz17k:aa",))
    donor = _rec("r-2", "real", ("ddi:000002",))
    mapped = _rec("lm-1", "lesion_mapped", ("ddi:000002", "fitz17k:aa"), base_id="h-1", donor_id="r-2")
    for ddi_split, want in (("train", "train"), ("test", "test")):
        kept, _, rejected = apply_splits([mapped], {"fitz17k:aa": "train", "ddi:000002": ddi_split},
                                         reference=[base, donor])
        assert not rejected and [r.split for r in kept] == [want]


def test_a_stratified_split_gives_each_source_its_own_ratios():
    import dataclasses
    from collections import Counter

    from builder.core.config import CurationConfig
    from curation.splits import assign_splits

    real = [_rec(f"r-{s}-{i}", "real", (f"{s}:{i:03d}",)) for s, n in (("ddi", 4), ("fitz17k", 16)) for i in range(n)]
    cfg = dataclasses.replace(CurationConfig(), ratios={"train": 0.5, "validation": 0.0, "test": 0.5})
    split_of = assign_splits(real, cfg)
    assert Counter((s.split(":")[0], sp) for s, sp in split_of.items()) == {
        ("ddi", "train"): 2, ("ddi", "test"): 2, ("fitz17k", "train"): 8, ("fitz17k", "test"): 8}
