"""A build under the paper's leakage rule against the same build under the strict one: the rows differ
exactly where the rules differ (v1.1's demo: lesion maps on a more held-out base than their donor take
the donor's split; near duplicates follow the new placements), the card says which rule applied, and
the config hash (so the tag) tells them apart."""
from __future__ import annotations

import csv
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
    with open(demo_v11.out_dir.parent / ".work" / "1.1" / "splits.csv", newline="") as f:
        split_of = {row["source_id"]: row["split"] for row in csv.DictReader(f)}  # each photo's own
    for sid, r in mine.items():
        if sid in strict:  # a lesion map takes its donor's split; every other row keeps the strict one
            want = max((split_of[s] for s in r.donor_source_ids), key=ORDER.index) \
                if r.kind == "lesion_mapped" else strict[sid].split
            assert r.split == want, (sid, r.split, want)
    moved = {sid for sid in set(mine) & set(strict) if mine[sid].split != strict[sid].split}
    assert moved and all(strict[s].kind == "lesion_mapped" and
                         ORDER.index(strict[s].split) > ORDER.index(mine[s].split) for s in moved)
    # Rows kept by one build only: near duplicates, which follow the placements (a pair across splits
    # under one rule may sit in one split under the other); never anything else.
    for only, other in ((set(mine) - set(strict), demo_v11.out_dir), (set(strict) - set(mine), paper.out_dir)):
        with open(other.parent / ".work" / other.name / "rejections.csv", newline="") as f:
            why = {row["item_id"]: row["reason"] for row in csv.DictReader(f) if row["stage"] == "curate"}
        assert all(why[sid].startswith("near_duplicate") or why[sid].startswith("exact_duplicate")
                   for sid in only), {sid: why.get(sid) for sid in only}
    manifest = json.loads((paper.out_dir / "manifest.json").read_text())
    assert manifest["config"]["curation"]["leakage_rule"] == "paper"
    assert manifest["config_hash"] != json.loads((demo_v11.out_dir / "manifest.json").read_text())["config_hash"]
    card = " ".join((paper.out_dir / "README.md").read_text().split())
    counts = {s: sum(r.split == s for r in mine.values() if r.kind != "real") for s in ORDER}
    placed = [max((split_of[x] for x in r.source_ids), key=ORDER.index) for r in mine.values() if r.kind != "real"]
    theirs = {s: placed.count(s) for s in ORDER}  # the strict rule's placement of the same rows
    cells = "; ".join(f"{s} {counts[s]:,} (strict rule: {theirs[s]:,})" for s in ORDER)
    assert "Rule applied: **the paper's**" in card and f"Synthetic rows per split under it: {cells}." in card
