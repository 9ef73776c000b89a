"""Shared test set-up: offline Hub, no progress bars, the real data in ../shared/data, shared builds.

Session fixtures for tests that need a built version (stable names; reuse them rather than building):

- `demo_v11`: v1.1 built once from the embedded demo source with default options, the same as
  `python -m builder build --version 1.1 --out OUT`; a `BuildResult` (`.out_dir` = OUT/1.1,
  `.records`, `.files`, `.stages`, `.decisions`; the stages are in OUT/.work/1.1). Read it only: a
  test that writes into a version or its work folder (evaluate, audit's default report, a rebuild)
  copies it first with `tests.demo_build.copy_out(demo_v11, tmp_path / "out")`. At the end of the
  session the fixture fails if any file under OUT changed. No test needs a demo v1.2 build yet; when
  one does, add it here as `demo_v12` the same way.
- `fitz_v11`: (store, version folder) of `tests.publish_helpers`: `make_store` of the first 20
  real Fitzpatrick17k photos (needs the real data), published as v1.1 by `build_version`. Read it
  only: a test that plants rows in the store or edits the version works on
  `tests.publish_helpers.copy_published(fitz_v11, tmp_path)`, a (store, version) copy; publishing a
  changed store still goes through `build_version`. Also checked at the end of the session.
- `ddi_build`: v1.1 from DDI's real metadata table and sDDI masks with stand-in photos (needs the
  real data).
- `two_sources`: v1.2 from two sources, a DDI-layout folder (stand-ins) and Fitzpatrick17k photos, lesion
  maps across sources (needs the real data; tests that use it are `slow`). Read it only.

Markers (declared in pyproject.toml): `slow` marks end-to-end work that a test (or a fixture of its
module) runs for itself instead of reading a shared build: a full build of another config or
source, a real-data build, kill and resume, several processes. The default `python -m pytest`
deselects `slow`, `gpu` and `hub`; `python -m pytest -m "not gpu and not hub"` (CI) runs the slow
tests too, `-m slow` only them.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Offline and quiet before anything imports huggingface_hub (offline, each failed Hub call retries for 23 s or more).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
if "HF_HOME" not in os.environ:  # a Hub cache of this test session's own, removed when the session ends
    _HF_HOME = tempfile.TemporaryDirectory(prefix="cgddi-hf-home-")
    os.environ["HF_HOME"] = _HF_HOME.name
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["CGDDI_PROGRESS"] = "0"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CGDDI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
# CI sets this: a missing data folder then fails the run instead of skipping the real-data tests.
REQUIRE_SHARED_DATA = os.environ.get("CGDDI_REQUIRE_SHARED_DATA", "") not in ("", "0")
# What the real-data tests read; scripts/fetch_test_data.py writes exactly this layout.
SHARED_DATA_LAYOUT = ("sddi_masks/manifest.csv", "ddi_metadata.csv", "fitz17k_lesions/metadata.csv",
                      "fitzpatrick17k.csv")
HOW_TO_GET = (f"run `python scripts/fetch_test_data.py --dest {SHARED_DATA}` (public files at pinned commits, "
              "sha256-checked), or set CGDDI_SHARED_DATA to a folder that has them")


def _shared_data_problem() -> tuple[str, str] | None:
    """None when the real data is there; else ("missing" | "incomplete", one-line message)."""
    present = [rel for rel in SHARED_DATA_LAYOUT if (SHARED_DATA / rel).is_file()]
    if len(present) == len(SHARED_DATA_LAYOUT):
        return None
    if not present:
        return "missing", f"real test data not found at {SHARED_DATA}: {HOW_TO_GET}"
    lacking = sorted(set(SHARED_DATA_LAYOUT) - set(present))
    return "incomplete", f"real test data at {SHARED_DATA} is incomplete (no {', '.join(lacking)}): {HOW_TO_GET}"


def pytest_collection_modifyitems(config, items):
    """Mark every test that reads the real data; under CGDDI_REQUIRE_SHARED_DATA=1 its absence stops the run."""
    needing = [item for item in items if "shared_data" in getattr(item, "fixturenames", ())]
    for item in needing:
        item.add_marker(pytest.mark.shared_data)
    problem = _shared_data_problem() if needing else None
    if problem and REQUIRE_SHARED_DATA:
        raise pytest.UsageError(f"CGDDI_REQUIRE_SHARED_DATA is set and {len(needing)} selected tests need the "
                                f"real data, but {problem[1]}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Report every missing-data skip at one place, so `-ra` folds them into one summary line."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and str(report.longrepr[2]).startswith(
            "Skipped: real test data not found"):
        report.longrepr = (__file__, _FIXTURE_LINE, report.longrepr[2])
    return report


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data (sDDI masks, DDI metadata, Fitzpatrick17k photos with masks), read in place.

    Missing: the test skips (one folded line in the summary); incomplete: it fails, naming what is missing."""
    problem = _shared_data_problem()
    if problem is None:
        return SHARED_DATA
    kind, message = problem
    if kind == "missing" and not REQUIRE_SHARED_DATA:
        pytest.skip(message)
    pytest.fail(message, pytrace=False)


_FIXTURE_LINE = shared_data.__wrapped__.__code__.co_firstlineno if hasattr(shared_data, "__wrapped__") else 0


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def _unchanged(name: str, root: Path, before: dict[str, str], how: str) -> None:
    """Fail naming the files when a test wrote into a shared, read-only build."""
    from tests.demo_build import tree_digest

    after = tree_digest(root)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if changed:
        pytest.fail(f"a test wrote into the shared {name} at {root} ({len(changed)} files, e.g. "
                    f"{', '.join(changed[:3])}): copy it first with {how}", pytrace=False)


@pytest.fixture(scope="session")
def demo_v11(tmp_path_factory):
    """v1.1 from the demo source, built once per session; read-only (see the module docstring)."""
    from tests.demo_build import build_demo, tree_digest

    result = build_demo("1.1", tmp_path_factory.mktemp("demo-v11") / "out")
    before = tree_digest(result.out_dir.parent)
    yield result
    _unchanged("demo_v11 build", result.out_dir.parent, before, "tests.demo_build.copy_out")


@pytest.fixture(scope="session")
def fitz_v11(shared_data, tmp_path_factory):
    """(store, version folder): `tests.publish_helpers.make_store`'s 20 Fitzpatrick17k photos published
    as v1.1 by `build_version`, once per session; read-only (see the module docstring)."""
    from tests.demo_build import tree_digest
    from tests.publish_helpers import build_version, make_store

    root = tmp_path_factory.mktemp("fitz-v11")
    store = make_store(shared_data, root / "store")
    folder = build_version(store, root / "out")
    before = tree_digest(root)
    yield store, folder
    _unchanged("fitz_v11 store and version", root, before, "tests.publish_helpers.copy_published")


@pytest.fixture(scope="session")
def ddi_build(shared_data, tmp_path_factory):
    """v1.1 built from DDI's real metadata table and real sDDI masks, with stand-in photos:
    (source description, BuildResult, root folder holding ddi/ and out/)."""
    from tests.downstream_fixtures import build_ddi_version

    return build_ddi_version(shared_data, tmp_path_factory.mktemp("ddi-build"))


@pytest.fixture(scope="session")
def two_sources(shared_data, tmp_path_factory):
    """v1.2 over a DDI-layout folder (stand-in photos) and 39 Fitzpatrick17k photos, lesion maps across
    sources only: (DDI folder's roles, BuildResult, root holding ddi/, fitz/ and out/); read-only."""
    from tests.demo_build import tree_digest
    from tests.downstream_fixtures import build_two_sources

    ddi, result, root = build_two_sources(shared_data, tmp_path_factory.mktemp("two-sources"))
    before = tree_digest(root / "out")
    yield ddi, result, root
    _unchanged("two_sources build", root / "out", before, "tests.demo_build.copy_out")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module's tiny models (`pytestmark = pytest.mark.usefixtures(...)`): on a busy
    2-core runner torch's default threads spin against each other (a tiny pipeline ran 13x slower, 23 s vs
    1.7 s), torchrun workers run one thread each, and the thread count can move a pixel by 1, so every run
    in a module uses the same count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

