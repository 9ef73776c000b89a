"""The version layout: one place names <root>/<version>, .work, .staging; a version is a name, never a path."""
from __future__ import annotations

from pathlib import Path

import pytest

from builder.core.errors import ConfigError
from builder.core.layout import VersionLayout, check_version_name


@pytest.mark.parametrize("name", ["1.1", "1.2", "2.0-rc1", "v1_1", "1.1.12345"])
def test_plain_version_names_pass(name):
    assert check_version_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../victim", "a/b", "/abs", "1.1/..", "x..y", ".hidden",
                                  "a b", "a\nb", "a" * 65, None])
def test_names_that_would_be_paths_are_refused(name):
    with pytest.raises(ConfigError, match="not a version name"):
        check_version_name(name)


def test_layout_names_every_folder_under_its_root(tmp_path):
    lay = VersionLayout(tmp_path, "1.1")
    assert lay.version_dir == tmp_path / "1.1"
    assert lay.work == tmp_path / ".work" / "1.1"
    assert lay.staging(42) == tmp_path / ".staging" / "1.1.42"
    assert lay.splits_csv == tmp_path / ".work" / "1.1" / "splits.csv"
    assert lay.audit_report == tmp_path / ".work" / "1.1" / "audit_report.json"
    assert VersionLayout.of_folder(tmp_path / "1.1") == lay
    for path in (lay.version_dir, lay.work, lay.staging(1)):
        assert tmp_path in path.parents


def test_a_layout_refuses_a_path_as_version(tmp_path):
    with pytest.raises(ConfigError):
        VersionLayout(tmp_path, "../../etc")
    with pytest.raises(ConfigError):
        VersionLayout.of_folder(Path("/"))
