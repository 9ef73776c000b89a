"""One reader and writer of splits.csv and test-id files; test ids that match no source are refused
by audit, export, curate and build, naming a few ids from each side."""
from __future__ import annotations

import dataclasses

import pytest

from builder.cli import main
from builder.core.errors import ConfigError
from builder.core.splits_file import read_splits, read_test_ids, write_splits, write_test_ids


def test_splits_round_trip_and_strict_reading(tmp_path):
    split_of = {"ddi:000002": "test", "ddi:000001": "train", "ddi:000003": "validation"}
    path = write_splits(tmp_path / "splits.csv", split_of)
    assert path.read_bytes() == b"source_id,split\nddi:000001,train\nddi:000002,test\nddi:000003,validation\n"
    assert read_splits(path) == split_of
    path.write_text("source_id,split\nddi:000001,holdout\n")
    with pytest.raises(ConfigError, match=r"line 2: ddi:000001 has split 'holdout'"):
        read_splits(path)
    path.write_text("source_id,split\nddi:000001,train\nddi:000001,test\n")
    with pytest.raises(ConfigError, match=r"line 3: ddi:000001 is listed twice"):
        read_splits(path)
    path.write_text("id,fold\nx,1\n")
    with pytest.raises(ConfigError, match=r"columns are \['id', 'fold'\], expected source_id,split"):
        read_splits(path)


def test_test_id_files_a_list_a_splits_csv_and_an_id_column(tmp_path):
    listing = write_test_ids(tmp_path / "ids.txt", ["ddi:000002", "ddi:000001"])
    assert listing.read_text() == "ddi:000001\nddi:000002\n"
    assert read_test_ids(listing) == {"ddi:000001", "ddi:000002"}
    splits = write_splits(tmp_path / "splits.csv", {"ddi:000001": "test", "ddi:000002": "train"})
    assert read_test_ids(splits) == {"ddi:000001"}  # only the test rows of a splits.csv (was: every row)
    column = tmp_path / "col.csv"
    column.write_text("# held out\nsource_id,note\nddi:000004,a\nddi:000005,b\n")
    assert read_test_ids(column) == {"ddi:000004", "ddi:000005"}
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="lists no test ids"):
        read_test_ids(tmp_path / "empty.txt")


def test_curation_and_audit_read_test_ids_the_same_way(tmp_path):
    """The two readers the issue found disagreeing are now one: both see only the test rows."""
    from builder.core import splits_file
    from curation import splits as curation_splits

    assert curation_splits.read_test_ids is splits_file.read_test_ids
    import builder.published.audit

    assert not hasattr(builder.published.audit, "read_test_ids")


@pytest.fixture()
def version(fitz_v11):
    return fitz_v11[1]  # read only: audit and export are given --report and --out elsewhere


def test_audit_and_export_refuse_test_ids_of_another_source(version, tmp_path, capsys):
    ids = write_test_ids(tmp_path / "ddi_test.txt", [f"ddi:{i:06d}" for i in range(1, 30)])
    assert main(["audit", str(version), "--report", str(tmp_path / "r.json"), "--test-ids", str(ids)]) == 2
    err = capsys.readouterr().err
    assert "none of the 29 test ids (ddi:000001, ddi:000002, ddi:000003, ...) is among the 20 source ids of" in err
    assert "(fitz17k:" in err and "Traceback" not in err
    assert main(["export", "patchalign", "--version", "1.1", "--folder", str(version), "--out",
                 str(tmp_path / "pa"), "--test-ids", str(ids)]) == 2
    assert "none of the 29 test ids" in capsys.readouterr().err
    # the right file still works, and one unknown id among known ones is only a partial match
    ok = write_test_ids(tmp_path / "ok.txt", ["fitz17k:" + "0" * 32] + [
        s for s in read_test_ids_from(version)][:2])
    assert main(["audit", str(version), "--report", str(tmp_path / "r.json"), "--test-ids", str(ok)]) in (0, 1)
    assert "test sources 3 (file)" in capsys.readouterr().out


def read_test_ids_from(version):
    import pyarrow.parquet as pq

    return sorted({s for f in (version / "data").rglob("*.parquet")
                   for row in pq.read_table(f, columns=["source_ids"]).column("source_ids").to_pylist() for s in row})


def test_curate_and_build_refuse_test_ids_of_another_source(shared_data, tmp_path, capsys):
    ids = write_test_ids(tmp_path / "ddi_test.txt", ["ddi:000001", "ddi:000002"])
    rc = main(["curate", "--source", str(shared_data / "fitz17k_lesions"), "--out", str(tmp_path / "c"),
               "--test-ids", str(ids), "--limit", "8", "--workers", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "none of the 2 test ids (ddi:000001, ddi:000002) is among the 8 source ids of the " \
                       "ingested real images (fitz17k:" in err
    from builder.build import BuildOptions, build
    from builder.core.config import load_config

    cfg = load_config("1.1")
    cfg = dataclasses.replace(cfg, curation=dataclasses.replace(cfg.curation, split_method="test_ids",
                                                                test_ids_file=str(ids)))
    with pytest.raises(ConfigError, match=r"none of the 2 test ids \(ddi:000001, ddi:000002\) is among the 12 "
                                          r"source ids of the ingested real images \(demo:000001, demo:000002"):
        build(cfg, BuildOptions(out=tmp_path / "b", limit=12, workers=1))
    assert not (tmp_path / "b" / ".work" / "1.1" / "healthy").exists()  # refused before generation
