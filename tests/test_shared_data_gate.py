"""Without ../shared/data the real-data tests skip with one line saying how to get it; CI's variable makes that fail."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO_ROOT, SHARED_DATA_LAYOUT

# test_dedup mixes tests that need the real data with tests that do not; its slowest test, which
# needs no data, is left out of the child runs (it says nothing about the data gate).
TARGET = "tests/curation/test_dedup.py"
UNRELATED = f"{TARGET}::test_near_pairs_keep_filter_equals_filtering_brute_force_on_dense_clusters"


def _pytest(data_dir, require: bool):
    env = {k: v for k, v in os.environ.items() if k != "CGDDI_REQUIRE_SHARED_DATA"}
    env.update(CGDDI_SHARED_DATA=str(data_dir), PYTHONPATH=str(REPO_ROOT))
    if require:
        env["CGDDI_REQUIRE_SHARED_DATA"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", TARGET, "--deselect", UNRELATED, "-q", "-p",
                           "no:cacheprovider"],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_missing_data_skips_with_one_line(tmp_path):
    run = _pytest(tmp_path / "no-such-folder", require=False)
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1, run.stdout
    assert "real test data not found" in skipped[0] and "scripts/fetch_test_data.py" in skipped[0]
    assert " passed, " in run.stdout and " skipped" in run.stdout and "error" not in run.stdout


def test_ci_variable_turns_missing_data_into_a_failure(tmp_path):
    run = _pytest(tmp_path / "no-such-folder", require=True)
    assert run.returncode != 0
    assert "CGDDI_REQUIRE_SHARED_DATA is set" in run.stdout + run.stderr
    assert "scripts/fetch_test_data.py" in run.stdout + run.stderr


def test_incomplete_data_fails_naming_what_is_missing(tmp_path):
    (tmp_path / "sddi_masks").mkdir()
    (tmp_path / SHARED_DATA_LAYOUT[0]).write_text("file\n")
    run = _pytest(tmp_path, require=False)
    assert run.returncode == 1
    assert "is incomplete (no " in run.stdout and "ddi_metadata.csv" in run.stdout
