"""Shared test set-up: offline Hub, no progress bars, and the real data in ../shared/data."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Offline and quiet before anything imports huggingface_hub (environment.md: failed Hub calls retry 23 s+).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="cgddi-hf-home-"))
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["CGDDI_PROGRESS"] = "0"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CGDDI_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data (sDDI masks, DDI metadata, Fitzpatrick17k photos with masks), read in place."""
    if not (SHARED_DATA / "sddi_masks").is_dir():
        raise RuntimeError(f"real test data not found at {SHARED_DATA}; set CGDDI_SHARED_DATA to the "
                           "folder holding sddi_masks/, fitz17k_lesions/ and ddi_metadata.csv")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def ddi_build(shared_data, tmp_path_factory):
    """v1.1 built from DDI's real metadata table and real sDDI masks, with stand-in photos:
    (source description, BuildResult, root folder holding ddi/ and out/)."""
    from tests.downstream_fixtures import build_ddi_version

    return build_ddi_version(shared_data, tmp_path_factory.mktemp("ddi-build"))
