"""Build configs: every shipped version loads; wrong types, unknown keys and bad YAML are ConfigErrors naming the fix."""
from __future__ import annotations

import copy
import datetime

import pytest
import yaml

from builder.core.config import CONFIG_DIR, available_versions, load_config
from builder.core.errors import ConfigError

BASE = yaml.safe_load((CONFIG_DIR / "1.1.yaml").read_text())


def _write(tmp_path, section, key, value):
    raw = copy.deepcopy(BASE)
    (raw.setdefault(section, {}) if section else raw)[key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("version", available_versions())
def test_every_shipped_config_loads(version):
    cfg = load_config(version)
    assert cfg.version == version and isinstance(cfg.lesion_map.pads, tuple)


def test_valid_file_keeps_the_yaml_values_and_hash(tmp_path):
    path = _write(tmp_path, "lesion_map", "seed", 1)  # the value 1.1 has: same content, same hash
    assert load_config(str(path)).config_hash() == load_config("1.1").config_hash()
    assert load_config(str(_write(tmp_path, "healthy", "guidance", 7))).healthy.guidance == 7  # int is a number


@pytest.mark.parametrize("section,key,value,expected", [
    ("lesion_map", "budget", "lots", r"lesion_map\.budget is 'lots' \(a string\); expected an integer or null\. "
                                     r"Fix: e\.g\. `budget: 120`"),
    ("lesion_map", "budget", "120", r"lesion_map\.budget is '120' \(a string\); expected an integer"),
    ("lesion_map", "budget", 1.5, r"lesion_map\.budget is 1\.5 \(a number\); expected an integer"),
    ("lesion_map", "budget", True, r"lesion_map\.budget is true \(a boolean\); expected an integer"),
    ("lesion_map", "pads", 10, r"lesion_map\.pads is 10 \(an integer\); expected a list of integers\. "
                               r"Fix: e\.g\. `pads: \[10, 5, 0\]`"),
    ("lesion_map", "pads", [10, "a"], r"lesion_map\.pads\[1\] is 'a' \(a string\); expected a list of integers"),
    ("healthy", "include_marker", "yes", r"healthy\.include_marker is 'yes' \(a string\); expected true or false"),
    ("semantic", "revision", 1234, r"semantic\.revision is 1234 \(an integer\); expected a string or null\. "
                                   r"Fix: quote it, e\.g\. `revision: \"1234\"`"),
    ("curation", "ratios", [0.7], r"curation\.ratios is \[0\.7\] \(a list\); expected a mapping of strings to numbers"),
    ("curation", "ratios", {"train": "x"}, r"curation\.ratios\.train is 'x'"),
    ("source", "name", datetime.date(2020, 1, 1), r"source\.name is 2020-01-01 \(date\); expected a string"),
])
def test_wrong_type_names_file_key_value_type_and_fix(tmp_path, section, key, value, expected):
    path = _write(tmp_path, section, key, value)
    with pytest.raises(ConfigError, match=expected) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}: ")


def test_several_wrong_types_reported_together(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["lesion_map"].update(budget="lots", pads=10)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="2 settings have the wrong type") as e:
        load_config(str(path))
    assert "lesion_map.budget is 'lots'" in str(e.value) and "lesion_map.pads is 10" in str(e.value)


def test_unknown_keys_are_errors_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown keys \['budgett'\] \('budgett': did you mean 'budget'\?\)"):
        load_config(str(_write(tmp_path, "lesion_map", "budgett", 3)))
    with pytest.raises(ConfigError, match=r"unknown top-level keys \['lesion_mapp'\]"):
        load_config(str(_write(tmp_path, None, "lesion_mapp", {})))


def test_section_version_and_file_shapes(tmp_path):
    with pytest.raises(ConfigError, match=r"lesion_map is 5 \(an integer\); expected a mapping of settings"):
        load_config(str(_write(tmp_path, None, "lesion_map", 5)))
    with pytest.raises(ConfigError, match=r"version is 1\.2 \(a number\); expected a string\. Fix: quote it"):
        load_config(str(_write(tmp_path, None, "version", 1.2)))
    bad = tmp_path / "syntax.yaml"
    bad.write_text("version: '1.1'\nlesion_map:\n  budget: [1\n")
    with pytest.raises(ConfigError, match=r"syntax\.yaml: line \d+, column \d+ is not valid YAML"):
        load_config(str(bad))
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level is a list; expected a mapping"):
        load_config(str(bad))
    bad.write_bytes(b"version: '1.1'\nsource:\n  name: d\xffmo\n")
    with pytest.raises(ConfigError, match="is not UTF-8"):
        load_config(str(bad))


def test_empty_section_takes_the_defaults(tmp_path):
    cfg = load_config(str(_write(tmp_path, None, "publish", None)))
    assert cfg.publish.shard_mb == 500 and cfg.publish.include_real is False
