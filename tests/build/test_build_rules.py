"""A build under the paper's leakage rule against the same build under the strict one: the rows differ
exactly where the rules differ (v1.1's demo: lesion maps on a held-out base with a donor that is not
held out), the card says which rule applied, and the config hash (so the tag) tells them apart."""
from __future__ import annotations

import dataclasses
import json

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from tests.demo_build import copy_out

ORDER = ("train", "validation", "test")


@pytest.mark.slow  # curation and publish of v1.1's demo again (generation reused from the shared build)
def test_paper_rule_build_differs_from_strict_only_where_the_rules_differ(demo_v11, tmp_path):
    out = copy_out(demo_v11, tmp_path / "out")
    cfg = load_config("1.1")
    paper_cfg = dataclasses.replace(cfg, curation=dataclasses.replace(cfg.curation, leakage_rule="paper"))
    paper = build(paper_cfg, BuildOptions(out=out, overwrite=True))
    strict = {r.sample_id: r for r in demo_v11.records}
    mine = {r.sample_id: r for r in paper.records}
    assert set(mine) == set(strict)
    split_of = {}
    for r in strict.values():
        if r.kind == "healthy":
            split_of[r.source_ids[0]] = r.split  # each photo's own split (its healthy row keeps it)
    expected = {}
    for sid, r in strict.items():
        if r.kind == "lesion_mapped":
            donor = max((split_of[s] for s in r.donor_source_ids), key=ORDER.index)
            expected[sid] = donor
        else:
            expected[sid] = r.split
    assert {sid: r.split for sid, r in mine.items()} == expected
    moved = {sid for sid in mine if mine[sid].split != strict[sid].split}
    assert moved and all(strict[s].kind == "lesion_mapped" and strict[s].split == "test" for s in moved)
    manifest = json.loads((paper.out_dir / "manifest.json").read_text())
    assert manifest["config"]["curation"]["leakage_rule"] == "paper"
    assert manifest["config_hash"] != json.loads((demo_v11.out_dir / "manifest.json").read_text())["config_hash"]
    card = " ".join((paper.out_dir / "README.md").read_text().split())
    counts = {s: sum(r.split == s for r in mine.values() if r.kind != "real") for s in ORDER}
    theirs = {s: sum(r.split == s for r in strict.values() if r.kind != "real") for s in ORDER}
    cells = "; ".join(f"{s} {counts[s]:,} (strict rule: {theirs[s]:,})" for s in ORDER)
    assert "Rule applied: **the paper's**" in card and f"Synthetic rows per split under it: {cells}." in card
