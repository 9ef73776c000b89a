"""An automatic mask discarded in human review: its photo keeps no mask (`mask_discarded_in_review`),
so it has no healthy version and donates no lesion; the ingest key changes with exactly those ids."""
from builder.core.config import MasksConfig, load_config
from builder.core.store import StageStore
from curation.source.automasks.run import run_masks
from curation.source.ingest import ingest_source, plan_ingest
from tests.curation.source.test_auto_masks import fitz_source


def test_a_discarded_automatic_mask_rejects_its_photo(tmp_path, shared_data):
    rows = fitz_source(shared_data, tmp_path / "src", 3)
    run_masks(tmp_path / "src", None, tmp_path / "auto", MasksConfig(min_confidence=0.0))
    bad = f"fitz17k:{rows[0]['md5hash']}"
    plain = plan_ingest(tmp_path / "src", None, auto_masks=tmp_path / "auto")
    assert plan_ingest(tmp_path / "src", None, auto_masks=tmp_path / "auto", discarded_masks={}).key == plain.key
    plan = plan_ingest(tmp_path / "src", None, auto_masks=tmp_path / "auto", discarded_masks={bad: "bad_mask"})
    assert plan.key.fingerprint != plain.key.fingerprint  # the ingest step reruns
    real = StageStore(tmp_path / "real")
    ingest_source(tmp_path / "src", None, real, workers=1, plan=plan)
    recs = {r.source_ids[0]: r for r in real.records()}
    assert len(recs) == 3 and recs[bad].params["mask_rejected"] == "mask_discarded_in_review"
    assert not real.mask_path(recs[bad].sample_id).exists() and not recs[bad].auto_masks
    assert all(real.mask_path(r.sample_id).exists() for s, r in recs.items() if s != bad)
    from generation.healthy.stage import run_healthy

    summary = run_healthy(real, StageStore(tmp_path / "healthy"), load_config("1.1-notebook").healthy)
    assert summary.done == 2 and summary.rejected == {"mask_discarded_in_review": 1}
