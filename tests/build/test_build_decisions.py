"""`build --decisions`: what review discarded is not published and nothing is derived from it; the
card reports the review, the manifest names the decisions file by sha256; only the steps that
depend on the discards rerun."""
import hashlib
import json

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.decisions import Decision, append_decision
from builder.core.store import StageStore


def _decide(path, i, decision, criterion="", reviewer="ann"):
    append_decision(path, Decision(i, decision, criterion, reviewer, "", "2026-01-01T00:00:00+00:00"))


@pytest.mark.slow
def test_discarded_images_are_gone_with_what_was_derived_from_them(tmp_path):
    cfg = load_config("1.1")
    out = tmp_path / "out"
    build(cfg, BuildOptions(out=out, limit=12, workers=1))
    work = out / ".work" / "1.1"
    healthy = [r.sample_id for r in StageStore(work / "healthy").records()]
    bad = healthy[:2]
    kept_maps = [r for r in StageStore(work / "lesion_mapped").records() if r.base_id not in bad]
    bad_map = kept_maps[0].sample_id
    path = tmp_path / "decisions.csv"
    _decide(path, bad_map, "discard", "artefact")  # first a lesion map alone: nothing is regenerated
    only_map = build(cfg, BuildOptions(out=out, limit=12, workers=1, decisions=path, overwrite=True))
    assert bad_map not in {r.sample_id for r in only_map.records}
    assert only_map.decisions["healthy"] == "reused" and only_map.decisions["lesion_map"] == "reused"
    for i in healthy:
        _decide(path, i, "discard" if i in bad else "keep", "lesion_remains" if i in bad else "")
    _decide(path, bad[1], "keep", reviewer="bob")  # the reviewers disagree on this one

    result = build(cfg, BuildOptions(out=out, limit=12, workers=1, decisions=path, overwrite=True))
    ids = {r.sample_id for r in result.records}
    assert not ids & {*bad, bad_map}
    assert not any(r.base_id in bad for r in result.records if r.kind == "lesion_mapped")
    assert not any(set(r.source_ids) == set() for r in result.records)
    assert result.decisions["lesion_map"].startswith("rerun")  # re-planned without the discarded bases
    version = out / "1.1"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["review"]["decisions_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    queues = manifest["review"]["queues"]
    assert queues["healthy"]["discarded_by_criterion"] == {"lesion_remains": 2}
    assert queues["healthy"]["disagreements"] == 1 and queues["healthy"]["reviewers"] == ["ann", "bob"]
    card = (version / "README.md").read_text()
    assert "## Human review" in card and "lesion_remains 2" in card and "Cohen's kappa" in card
    healthy_stage = next(st for st in manifest["stages"] if st["stage"] == "healthy")
    assert healthy_stage["rejected"].get("discarded_in_review") == 2
