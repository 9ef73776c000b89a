"""The build is one ordered list of steps on one contract; every step checks its settings before any work."""
from __future__ import annotations

import dataclasses

import pytest

from builder.build.steps import STEPS, check_steps
from builder.core.config import load_config
from builder.core.errors import ConfigError
from builder.core.schema import STEP_OF_KIND
from builder.core.stage import Step


def test_the_build_is_the_steps_in_data_path_order():
    assert [s.name for s in STEPS] == ["source", "masks", "ingest", "splits", "healthy", "lesion_map",
                                       "semantic", "curate", "publish"]
    assert all(isinstance(s, Step) for s in STEPS)


def test_each_kind_is_made_by_the_step_the_schema_names():
    assert {s.kind: s.name for s in STEPS if s.kind} == STEP_OF_KIND


def test_optional_steps_follow_the_config():
    v11, v12 = load_config("1.1"), load_config("1.2")
    assert [s.name for s in STEPS if not s.enabled(v11)] == ["masks", "semantic"]
    assert [s.name for s in STEPS if not s.enabled(v12)] == ["semantic"]


@pytest.mark.parametrize("section,change,needle", [
    ("masks", {"min_confidence": 2.0}, "masks.min_confidence"),
    ("healthy", {"backend": "nope"}, "healthy.backend"),
    ("lesion_map", {"pads": ()}, "lesion_map.pads"),
    ("curation", {"phash_hamming": 99}, "curation.phash_hamming"),
    ("source", {"min_side_px": 0}, "source.min_side_px"),
])
def test_every_step_refuses_bad_settings_before_any_work(section, change, needle):
    cfg = load_config("1.2")
    bad = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **change)})
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        check_steps(bad)
