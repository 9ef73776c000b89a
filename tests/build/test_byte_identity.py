"""The demo v1.2 build's shards, byte for byte, as recorded before the package layout was reorganised
(folders by role, one step contract, one backend registry, columns declared once): a refactor must not
change them. A deliberate change to v1.2's content updates `data/demo_v1.2_shards.sha256` in the same
commit, saying why."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config

RECORDED = Path(__file__).parent / "data" / "demo_v1.2_shards.sha256"


@pytest.mark.slow
def test_demo_v1_2_shards_are_byte_identical_to_the_recorded_ones(tmp_path):
    result = build(load_config("1.2"), BuildOptions(out=tmp_path / "out", workers=2))
    want = dict(line.split()[::-1] for line in RECORDED.read_text().splitlines() if line.strip())
    got = {str(p.relative_to(result.out_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted((result.out_dir / "data").rglob("*.parquet"))}
    assert got == want
