"""Holdouts chosen at export time over a DDI-layout build: seeded folds of the table, a test-id file.

The fold must be the trainers' own call over the table; rows are placed again from their lineage
(strict: any held-out source makes a row test), and the build's own test set is not added.
"""
from __future__ import annotations

import json

import pytest

from builder.cli import main

pd = pytest.importorskip("pandas")


def _export(ddi_build, out, *extra):
    _, _, root = ddi_build
    return main(["export", "fairdisco", "--version", "1.1", "--build-out", str(root / "out"), "--out", str(out),
                 "--real", str(root / "ddi"), *extra])


def _fold(table, seed):
    from sklearn.model_selection import train_test_split

    df = pd.read_csv(table)
    _, test = train_test_split(df, df["malignant"], test_size=0.2, random_state=seed)[:2]
    return {f"ddi:{f[:-4]}" for f in test["DDI_file"]}


def _sources(frame):
    return [set(s.split(";")) for s in frame["source_ids"]]


@pytest.mark.parametrize("seed", [36, 40])
def test_seeded_fold_is_their_split_and_lineage_is_strict(ddi_build, tmp_path, seed):
    src, _, _ = ddi_build
    out = tmp_path / f"s{seed}"
    assert _export(ddi_build, out, "--holdout-seed", str(seed)) == 0
    held = _fold(src["table"], seed)
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    assert set(test["kind"]) == {"real"}
    assert {f"ddi:{h[:-4]}" for h in test["hasher"]} == held & {f"ddi:{s}" for s in src["train"] | src["test"]}
    assert all(not s & held for s in _sources(train))  # strict: no train row saw a held-out photo in any role
    moved = {f"ddi:{s}" for s in src["test"]} - held  # the build's test photos outside this fold train now
    assert moved and moved <= set().union(*_sources(train[train["kind"] == "real"]))
    report = json.loads((out / "export_report.json").read_text())["holdout"]
    assert report["replaces_build_test_set"] and report["rule"] == "strict" and str(seed) in report["name"]
    assert report["held_out_sources"] == len(held)
    assert report["train_by_lineage"] == (train["kind"] != "real").sum()
    assert report["test_by_lineage"] == json.loads((out / "export_report.json").read_text())["excluded"][
        "test_lineage_with_real_test"]
    assert f"seed {seed}" in (out / "TRAINING.md").read_text()


def test_folds_differ_and_test_id_file_replaces_the_build_test_set(ddi_build, tmp_path):
    src, _, _ = ddi_build
    assert _fold(src["table"], 36) != _fold(src["table"], 37)
    ids = sorted(f"ddi:{s}" for s in src["train"])[:3]  # train photos of the build, now the test set
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    out = tmp_path / "ids"
    assert _export(ddi_build, out, "--test-ids", str(tmp_path / "ids.txt")) == 0
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    assert {f"ddi:{h[:-4]}" for h in test["hasher"]} == set(ids)  # only the file's ids: no build test set added
    assert {f"ddi:{s}" for s in src["test"]} <= set().union(*_sources(train))
    assert all(not s & set(ids) for s in _sources(train))


def test_holdout_seed_needs_the_table(ddi_build, tmp_path, capsys):
    _, _, root = ddi_build
    assert main(["export", "fairdisco", "--version", "1.1", "--build-out", str(root / "out"),
                 "--out", str(tmp_path / "x"), "--holdout-seed", "36"]) == 2
    assert "--holdout-seed 36 needs --real" in capsys.readouterr().err


@pytest.mark.parametrize("name,train_tone", [("a12", 12), ("a56", 56)])
def test_tone_holdout_trains_on_one_tone_group(ddi_build, tmp_path, name, train_tone):
    """PatchAlign24's `a12`/`a56`: train = one tone group, test = the others; no train row saw a photo
    of another group in any role (strict lineage)."""
    src, _, _ = ddi_build
    out = tmp_path / name
    assert _export(ddi_build, out, "--tone-holdout", name) == 0
    train, test = pd.read_csv(out / "train.csv"), pd.read_csv(out / "test.csv")
    table = pd.read_csv(src["table"])
    tone = {f"ddi:{f[:-4]}": t for f, t in zip(table["DDI_file"], table["skin_tone"])}
    assert set(train["skin_tone"]) == {train_tone} and train_tone not in set(test["skin_tone"])
    assert len(test) and set(test["kind"]) == {"real"}
    for sources in _sources(train):
        assert {tone[s] for s in sources} == {train_tone}  # bases and donors alike
    report = json.loads((out / "export_report.json").read_text())["holdout"]
    assert report["replaces_build_test_set"] and name in report["name"]
    assert f"holdout_set='{name}'" in (out / "TRAINING.md").read_text()
