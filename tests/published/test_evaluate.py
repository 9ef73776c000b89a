"""`builder evaluate` end to end on the demo build with a tiny random-weight DINOv2-architecture backbone."""
import json
import subprocess
import sys

import numpy as np
import pytest

from builder.cli import main
from builder.core.errors import ConfigError
from builder.published.evaluate.run import EvalSettings, run_evaluation
from builder.build.manifest import read_manifest
from cards.evaluation import BEGIN
from generation.tiny import save_tiny_vision_backbone
from tests.demo_build import copy_out

ARGS = ["--steps", "3", "--batch-size", "8", "--n-boot", "40"]


@pytest.fixture(scope="module")
def evaluated(demo_v11, tmp_path_factory):
    out = copy_out(demo_v11, tmp_path_factory.mktemp("evalbuild") / "out")  # evaluate writes into the version
    model = save_tiny_vision_backbone(tmp_path_factory.mktemp("tinyvit") / "tinyvit")
    before = {f["path"]: f["sha256"] for f in read_manifest(out / "1.1")["files"]}
    rc = main(["-q", "evaluate", "--version", "1.1", "--build-out", str(out), "--model", str(model), *ARGS])
    assert rc == 0
    return out, model, before


def test_evaluation_json_has_both_measures_per_tone(evaluated):
    out, _, _ = evaluated
    res = json.loads((out / "1.1/evaluation.json").read_text())
    assert set(res["fidelity"]) == {"healthy", "lesion_mapped"}  # v1.1 has no semantic rows
    for kind in res["fidelity"].values():
        assert set(kind) == {"light", "medium", "dark", "overall"}
        assert kind["overall"]["n_real"] == 36
        assert kind["overall"]["frechet"] is not None and kind["overall"]["frechet"] >= 0
        lo, hi = kind["overall"]["frechet_ci"]
        assert lo <= hi
    u = res["utility"]
    assert u["n_train"]["real+synthetic"] > u["n_train"]["real"] > 0
    for label in ("real", "real+synthetic"):
        assert u[label]["overall"]["n_test"] == u["n_test"]
        assert sum(u[label][t]["n_test"] for t in ("light", "medium", "dark")) == u["n_test"]
        assert 0 <= u[label]["overall"]["auroc"] <= 1
    assert res["models"]["features"]["id"] == "local:tinyvit"
    assert res["models"]["features"]["revision"].startswith("local-")


def test_shards_untouched_and_new_files_in_the_manifest(evaluated):
    out, _, before = evaluated
    files = {f["path"]: f for f in read_manifest(out / "1.1")["files"]}
    for path, sha in before.items():
        if path != "README.md":
            assert files[path]["sha256"] == sha, path
    import hashlib

    for rel in ("evaluation.json", "plots/evaluation.png", "README.md"):
        assert files[rel]["sha256"] == hashlib.sha256((out / "1.1" / rel).read_bytes()).hexdigest()
    assert (out / "1.1/plots/evaluation.png").read_bytes().startswith(b"\x89PNG")


def test_card_section_and_audit_still_clean(evaluated):
    from builder.published.audit import audit_folder

    out, _, _ = evaluated
    card = (out / "1.1/README.md").read_text()
    assert card.count(BEGIN) == 1 and "## Evaluation" in card
    assert "local:tinyvit" in card and "plots/evaluation.png" in card
    assert card.index("## Evaluation") < card.index("## Terms")
    assert audit_folder(out / "1.1").ok


def test_rerun_is_cached_identical_and_resumes_a_lost_run(evaluated):
    out, model, _ = evaluated
    first = (out / "1.1/evaluation.json").read_bytes()
    cache = out / ".work/1.1/evaluation"
    runs = sorted(cache.glob("classifier-*.json"))
    # real, healthy, lesion_mapped, and five augmentations of the real photos (duplication is the real set)
    assert len(runs) == 2 and len(list(cache.glob("features-*.npy"))) == 8
    runs[0].unlink()  # as if killed before the second classifier finished
    assert main(["-q", "evaluate", "--version", "1.1", "--build-out", str(out), "--model", str(model), *ARGS]) == 0
    assert (out / "1.1/evaluation.json").read_bytes() == first  # same recipe and seed -> same scores
    assert (out / "1.1/README.md").read_text().count(BEGIN) == 1


def test_more_synthetic_kinds_change_only_the_second_training_set(evaluated, tmp_path):
    out, model, _ = evaluated
    s = EvalSettings(model=str(model), steps=3, batch_size=8, n_boot=20, kinds=("healthy",))
    res = run_evaluation(out / "1.1", s, work=out / ".work/1.1")
    assert res["utility"]["n_train"]["real+synthetic"] == res["utility"]["n_train"]["real"] + 24  # 24 healthy train
    ref = json.loads(json.dumps(res["utility"]["real"]))
    assert ref == res["utility"]["real"]


def test_bad_settings_fail_before_any_model_loads(tmp_path):
    with pytest.raises(ConfigError, match="pinned revision"):
        EvalSettings(model="facebook/dinov2-small").check()
    with pytest.raises(ConfigError, match="--specificity 1.5"):
        EvalSettings(model=str(tmp_path), specificity=1.5).check()
    with pytest.raises(ConfigError, match="no manifest.json"):
        run_evaluation(tmp_path / "nothing", EvalSettings(model=str(tmp_path)))
    from builder.published.evaluate.protocol import ProtocolSettings

    with pytest.raises(ConfigError, match="--protocol-backbone 'google/vit-base-patch16-224-in21k' has no pinned"):
        run_evaluation(tmp_path / "nothing", EvalSettings(model=str(tmp_path)), protocol=ProtocolSettings())
    with pytest.raises(ConfigError, match="--inception-weights .*no such file"):
        EvalSettings(model=str(tmp_path), inception_weights=str(tmp_path / "w.pth")).check()


def test_help_is_fast_and_imports_no_torch():
    code = ("import sys; from builder.cli import main\n"
            "try:\n    main(['evaluate', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported by --help'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "fidelity" in r.stdout and "--model" in r.stdout


def test_features_are_deterministic_numbers(evaluated):
    out, _, _ = evaluated
    arrays = [np.load(p) for p in sorted((out / ".work/1.1/evaluation").glob("features-*.npy"))]
    assert all(np.isfinite(a).all() and a.shape[1] == 32 for a in arrays)


def test_clip_agreement_per_tone_with_a_tiny_clip(tmp_path):
    from builder.core.store import encode_png
    from builder.published.evaluate.run import Item, clip_agreement
    from cards.evaluation import section
    from generation.tiny import save_tiny_clip

    clip = save_tiny_clip(tmp_path / "tinyclip")
    rng = np.random.default_rng(0)
    items = [Item(f"semantic-{n:02d}", "semantic", "train", tone, n % 2,
                  encode_png(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)),
                  f"a photo of <{'melanoma' if n % 2 else 'nevus'}-class> on {tone} skin")
             for n, tone in enumerate(["light", "medium", "dark"] * 3)]
    s = EvalSettings(model=str(clip), clip_model=str(clip), n_boot=30)
    res = clip_agreement(items, s, tmp_path, "cpu")
    assert res["overall"]["n"] == 9 and res["light"]["n"] == 3
    assert -1 <= res["overall"]["cosine"] <= 1 and res["overall"]["other_prompt_cosine"] is not None
    assert clip_agreement(items, s, tmp_path, "cpu") == res  # cached
    assert clip_agreement(items, EvalSettings(model=str(clip)), tmp_path, "cpu") is None
    fake = {"version": "x", "models": {"features": {"id": "a", "revision": "b"}, "classifier": {"id": "a", "revision": "b"},
                                       "clip": {"id": "local:tinyclip", "revision": "r"}},
            "settings": {"steps": 1, "seed": 0, "specificity": 0.9}, "fidelity": {},
            "utility": {"n_test": 0, "n_train": {"real": 0, "real+synthetic": 0},
                        **{k: {**{g: {"n_test": 0, "n_malignant": 0, "auroc": None, "auroc_ci": [None, None],
                                      "sensitivity": None} for g in ("light", "medium", "dark", "overall")},
                               "gap": None} for k in ("real", "real+synthetic")}},
            "clip_agreement": res}
    assert "**Prompt agreement**" in section(fake, None)


def test_card_carries_the_three_paper_tables_with_reasons(evaluated):
    out, _, _ = evaluated
    res = json.loads((out / "1.1/evaluation.json").read_text())
    assert res["imbalance"]["lesion_mapped"]["total"]["rows"] == res["counts"]["synthetic"]["lesion_mapped"]
    s6 = res["standard_fidelity"]
    assert s6["fid"]["not_computed"] and s6["lpips"]["not_computed"]  # no Inception / LPIPS weights offline
    assert "fid" not in s6["cells"]["healthy"]["light"]  # never a figure from another network
    assert res["transformative"]["augmentations"]["duplication"]["model_frechet"] == 0.0
    card = (out / "1.1/README.md").read_text()
    for title in ("(the paper's S4)", "(the paper's S6)", "(the paper's S8"):
        assert card.count(title) == 1, title
    cell = s6["cells"]["lesion_mapped"]["light"]
    assert f"| lesion_mapped | light | {cell['n_real']} / {cell['n_synthetic']} | not computed | 72.75 |" in card
    assert f"FID and KID network: not computed: {s6['fid']['not_computed']}" in card
    assert card.count("What differs:") == 3
    assert "| gaussian_noise | GaussNoise(std_range=(0.1, 0.1))" in card and "| 32.1 |" in card


@pytest.mark.slow  # a second whole evaluation (the default suite keeps under 10 min; CI runs it)
def test_a_test_network_in_place_of_inception_is_named_as_what_it_is(evaluated, tmp_path):
    import shutil

    from tests.published.test_evaluate_tables import tiny_extractor

    out, model, _ = evaluated
    shutil.copytree(out / "1.1", tmp_path / "1.1")
    from builder.published.evaluate.protocol import ProtocolSettings

    s = EvalSettings(model=str(model), steps=3, batch_size=8, n_boot=20)
    protocol = ProtocolSettings(backbone=str(model), seeds=(36, 37), epochs=1, finetune_epochs=1, batch_size=16)
    res = run_evaluation(tmp_path / "1.1", s, work=out / ".work/1.1", inception=tiny_extractor(), protocol=protocol)
    s6 = res["standard_fidelity"]
    assert s6["fid"]["network"].startswith("tiny random CNN") and not s6["fid"]["not_computed"]
    cells = s6["cells"]["lesion_mapped"]
    assert all(cells[g]["fid"] is not None and cells[g]["fid"] >= 0 for g in ("light", "medium", "dark", "overall"))
    from builder.published.evaluate.stats import population_sd

    assert s6["spread"]["lesion_mapped"]["fid"] == pytest.approx(
        population_sd([cells[t]["fid"] for t in ("light", "medium", "dark")]), abs=1e-4)
    aug = res["transformative"]["augmentations"]
    assert aug["duplication"]["fid"] == 0.0 and aug["gaussian_noise"]["fid"] > 0
    card = (tmp_path / "1.1/README.md").read_text()
    assert "not on the paper's scale" in card and "tiny random CNN (test network, not Inception-v3)" in card
    assert res["protocol"]["summary"]["real+synthetic"]["accuracy"]["n_folds"] == 2
    assert "**Classifier protocol**" in card and "| real+synthetic | " in card
