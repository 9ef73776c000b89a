"""Fitzpatrick17k's expert-verified subset (`source.subset`): rows outside it are rejected `not_in_subset`, counted."""
from __future__ import annotations

import csv
import shutil
from collections import Counter

import pytest

from builder.core.errors import ConfigError, SourceError
from curation.source.metadata import read_source_table
from tests.curation.source.test_auto_masks import fitz_source


def _published_table(shared_data, folder):
    """Fitzpatrick17k's published table (16,577 rows, no photos) as a source folder."""
    folder.mkdir()
    shutil.copy(shared_data / "fitzpatrick17k.csv", folder)
    return folder


def test_expert_verified_keeps_the_rows_the_dermatologists_confirmed_in_the_real_table(tmp_path, shared_data):
    src = _published_table(shared_data, tmp_path / "f17k")
    rows = list(csv.DictReader(open(src / "fitzpatrick17k.csv")))
    verified = [r for r in rows if r["qc"] in ("1 Diagnostic", "2 Characteristic")]
    assert (len(rows), len(verified)) == (16577, 380)
    table = read_source_table(src, subset="expert_verified")
    reasons = Counter(r.reason for r in table.rejections)
    assert reasons["not_in_subset"] == 16577 - 380 and table.subset == "expert_verified"
    assert table.n_in == len(table.rows) + len(table.rejections) == 16577  # nothing left out silently
    # the 380 go on to the usual checks: 4 have no Fitzpatrick type, the rest name photos not present here
    assert reasons["unknown_skin_tone"] == 4 and reasons["missing_image"] == 376 and not table.rows
    ex = next(r for r in table.rejections if r.reason == "not_in_subset" and "'5 Potentially'" in r.detail)
    assert "column qc" in ex.detail and "source.subset: all keeps it" in ex.detail
    everything = Counter(r.reason for r in read_source_table(src).rejections)  # default: all rows
    assert "not_in_subset" not in everything and everything["missing_image"] > 16000


def test_the_subset_of_the_masked_photos_table_and_its_photos(tmp_path, shared_data):
    rows = fitz_source(shared_data, tmp_path / "src", 39)
    expected = sorted(f"fitz17k:{r['md5hash']}" for r in rows if r["fitz17k_qc"] in ("1 Diagnostic",
                                                                                      "2 Characteristic"))
    table = read_source_table(tmp_path / "src", subset="expert_verified")
    assert [r.source_id for r in table.rows] == expected and len(expected) == 3
    assert Counter(r.reason for r in table.rejections) == {"not_in_subset": 36}  # their photos are not orphans
    assert all("column fitz17k_qc" in r.detail for r in table.rejections)
    assert len(read_source_table(tmp_path / "src").rows) == 39


def test_a_subset_that_cannot_apply_is_refused(tmp_path, shared_data):
    from builder.demo_source import write_demo_source

    with pytest.raises(ConfigError, match="source.subset='verified' is not one of all, expert_verified"):
        read_source_table(tmp_path, subset="verified")
    ddi = write_demo_source(tmp_path / "demo", 4, 0)
    with pytest.raises(ConfigError, match="a DDI table, which has none: use source.subset: all"):
        read_source_table(ddi, subset="expert_verified")
    fitz_source(shared_data, tmp_path / "src", 2)
    table = tmp_path / "src" / "metadata.csv"
    lines = table.read_text().splitlines()
    lines[0] = lines[0].replace("fitz17k_qc", "review")
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match="column qc or fitz17k_qc"):
        read_source_table(tmp_path / "src", subset="expert_verified")
