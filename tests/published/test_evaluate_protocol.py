"""The paper's classifier protocol: fairness gaps by hand, folds without leakage, a tiny run on CPU."""
import numpy as np
import pytest

from builder.published.evaluate import fairness
from builder.published.evaluate.run import Item


def test_pqd_dpm_eom_by_hand():
    # group a: y 1 1 0 0, pred 1 0 0 0 -> acc 3/4; group b: y 1 0 0, pred 1 1 0 -> acc 2/3
    y = [1, 1, 0, 0, 1, 0, 0]
    pred = [1, 0, 0, 0, 1, 1, 0]
    g = ["a"] * 4 + ["b"] * 3
    assert fairness.pqd(y, pred, g) == pytest.approx((2 / 3) / (3 / 4))
    # P(pred=1): a 1/4, b 2/3 -> 0.375; P(pred=0): a 3/4, b 1/3 -> 4/9; mean
    assert fairness.dpm(pred, g) == pytest.approx(((1 / 4) / (2 / 3) + (1 / 3) / (3 / 4)) / 2)
    # TPR of class 1: a 1/2, b 1/1 -> 0.5; of class 0: a 2/2, b 1/2 -> 0.5; mean 0.5
    assert fairness.eom(y, pred, g) == pytest.approx(0.5)
    same = fairness.pqd([1, 0, 1, 0], [1, 0, 1, 0], ["a", "a", "b", "b"])
    assert same == 1.0 and fairness.eom([1, 0, 1, 0], [1, 0, 1, 0], ["a", "a", "b", "b"]) == 1.0


def test_eom_leaves_out_a_group_without_the_class():
    # group b has no positive: class 1's ratio uses group a only (1.0); class 0: a 1/1, b 1/2 -> 0.5
    assert fairness.eom([1, 0, 0, 0], [1, 0, 0, 1], ["a", "a", "b", "b"]) == pytest.approx((1.0 + 0.5) / 2)


def test_across_folds_mean_sd_and_t_interval_by_hand():
    from scipy import stats

    v = [0.6, 0.7, 0.8, 0.65, 0.75]
    got = fairness.across_folds(v + [None])
    sd = float(np.std(v, ddof=1))
    half = stats.t.ppf(0.975, 4) * sd / np.sqrt(5)  # 2.776 * sd / sqrt(5)
    assert got["n_folds"] == 5 and got["mean"] == pytest.approx(0.7)
    assert got["sd"] == pytest.approx(sd, abs=1e-4)
    assert got["ci"] == pytest.approx([0.7 - half, 0.7 + half], abs=1e-4)
    assert fairness.across_folds([None])["mean"] is None


def _items(n, kind, seed, sources=None):
    from builder.core.store import encode_png

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        m = k % 2
        img = np.full((32, 32, 3), 60 + 120 * m, np.uint8) + rng.integers(0, 30, (32, 32, 3), dtype=np.uint8)
        sid = f"{kind}-{seed}-{k:02d}"
        out.append(Item(sid, kind, "train", ("light", "medium", "dark")[k % 3], m, encode_png(img),
                        source_ids=tuple(sources[k]) if sources else (sid,)))
    return out


def test_folds_follow_the_seed_and_drop_synthetics_of_test_photos():
    from builder.published.evaluate.protocol import fold

    real = _items(20, "real", 0)
    synth = _items(20, "lesion_mapped", 1, sources=[[real[k].sample_id, real[(k + 1) % 20].sample_id]
                                                    for k in range(20)])
    train, test, kept = fold(real, synth, 36, 0.2)
    assert len(test) == 4 and len(train) == 16
    assert [i.sample_id for i in fold(real, synth, 36, 0.2)[1]] == [i.sample_id for i in test]
    assert [i.sample_id for i in fold(real, synth, 37, 0.2)[1]] != [i.sample_id for i in test]
    held = {i.sample_id for i in test}
    assert kept and all(not held.intersection(i.source_ids) for i in kept)
    assert len(kept) == sum(1 for i in synth if not held.intersection(i.source_ids))


@pytest.mark.slow
def test_protocol_runs_with_a_tiny_backbone_and_caches(tmp_path):
    from builder.published.evaluate.protocol import METRICS, ProtocolSettings, run_protocol
    from generation.tiny import save_tiny_vision_backbone

    model = save_tiny_vision_backbone(tmp_path / "tinyvit")
    real = _items(18, "real", 0)
    synth = _items(12, "healthy", 2, sources=[[real[k].sample_id] for k in range(12)])
    s = ProtocolSettings(backbone=str(model), seeds=(36, 37), epochs=2, finetune_epochs=1, batch_size=8)
    res = run_protocol(real, synth, s, tmp_path, "cpu")
    assert set(res["folds"]) == {"36", "37"}
    for name in ("real", "synthetic", "real+synthetic"):
        f = res["folds"]["36"][name]
        assert 0 <= f["accuracy"] <= 1 and all(0 <= f[m] <= 1 for m in ("pqd", "dpm", "eom") if f[m] is not None)
        assert set(res["summary"][name]) == set(METRICS) and res["summary"][name]["accuracy"]["n_folds"] == 2
    assert res["folds"]["36"]["real+synthetic"]["n_train"] > res["folds"]["36"]["real"]["n_train"]
    assert len(list(tmp_path.glob("protocol-*.json"))) == 6
    assert run_protocol(real, synth, s, tmp_path, "cpu") == res  # from the cache
    assert res["settings"]["lr"] == 1e-4 and res["settings"]["gamma"] == 0.8 and "backbone" not in res["settings"]


def test_card_shows_the_protocol_summary():
    from cards.evaluation_tables import protocol_lines
    from builder.published.evaluate.protocol import METRICS, ProtocolSettings
    import dataclasses

    summary = {m: fairness.across_folds([0.6, 0.7, 0.8]) for m in METRICS}
    summary["eom"] = fairness.across_folds([None])
    settings = {k: v for k, v in dataclasses.asdict(ProtocolSettings()).items() if k not in ("backbone", "revision")}
    lines = protocol_lines({"protocol": {"backbone": {"id": "google/vit-base-patch16-224-in21k", "revision": "abc"},
                                         "settings": settings, "summary": {"real+synthetic": summary}}})
    text = "\n".join(lines)
    assert "Adam 0.0001, the rate x0.8 every 2 epochs, batch 32, 20 epochs, then 5 at 1e-05" in text
    assert "seeds 36, 37, 38, 39, 40" in text and "80% / 20%" in text
    assert "| real+synthetic | 0.700 ± 0.100 [" in text and text.rstrip().endswith("| n/a |")
    assert protocol_lines({}) == []
