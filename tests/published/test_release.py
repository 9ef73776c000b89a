"""`import-release` on a stand-in release named as cgDDI named its files, checked against a hand
computation of PatchAlign24's holdout over DDI's real metadata table."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli import main

REPO = Path(__file__).resolve().parents[2]


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (180, 120, 90)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()


def _table(shared_data: Path) -> list[dict]:
    with open(shared_data / "ddi_metadata.csv", newline="") as f:
        return list(csv.DictReader(f))


def _joined() -> dict[str, str]:
    with open(REPO / "builder" / "data" / "ddi_disease_map.csv", newline="") as f:
        return {r["ddi_disease"]: r["joined_disease"] for r in csv.DictReader(f)}


def hand_test_set(rows: list[dict], seed: int = 12140420) -> set[str]:
    """PatchAlign24's call, written out: train_test_split over the table's rows in file order."""
    from sklearn.model_selection import train_test_split

    _, test = train_test_split([r["DDI_file"][:-4] for r in rows], test_size=0.2, random_state=seed)
    return set(test)


def written(disease: str) -> str:
    return disease.replace("/", "_or_").replace(" ", "_")


def pick_pairs(rows: list[dict], test: set[str]) -> dict[str, tuple[dict, dict]]:
    """(base, donor) rows for each combination of held-out base / donor, with multi-word diseases."""
    joined = _joined()
    wanted = ("eczema/atopic dermatitis", "cutaneous T-cell lymphoma", "basal cell carcinoma",
              "melanoma", "acne-cystic", "graft-vs-host disease")
    donors = [r for r in rows if joined[r["disease"]] in wanted]
    in_test = lambda r: r["DDI_file"][:-4] in test  # noqa: E731
    pick = lambda rs, held: next(r for r in rs if in_test(r) == held)  # noqa: E731
    by_disease = {}
    for r in donors:
        by_disease.setdefault(joined[r["disease"]], []).append(r)
    pairs = {}
    for k, (base_held, donor_held) in enumerate([(False, False), (True, False), (False, True), (True, True)]):
        choices = [rs for d, rs in sorted(by_disease.items()) if any(in_test(r) == donor_held for r in rs)]
        donor = pick(choices[k % len(choices)], donor_held)
        base = pick(rows[k * 40:], base_held)
        pairs[f"base{'T' if base_held else 't'}_donor{'T' if donor_held else 't'}"] = (base, donor)
    return pairs


def lesion_name(base: dict, donor: dict) -> str:
    disease = _joined()[donor["disease"]]
    return f"{base['DDI_file'][:-4]}_with_{written(disease)}_from_{donor['skin_tone']}_{donor['DDI_file'][:-4]}.png"


@pytest.fixture()
def release(shared_data, tmp_path):
    rows = _table(shared_data)
    test = hand_test_set(rows)
    pairs = pick_pairs(rows, test)
    folder = tmp_path / "release"
    (folder / "lesion_mapped").mkdir(parents=True)
    (folder / "healthy").mkdir()
    expected = {}
    for key, (base, donor) in pairs.items():
        name = f"lesion_mapped/{lesion_name(base, donor)}"
        (folder / name).write_bytes(PNG)
        expected[name] = (base, donor)
    unknown = {
        "healthy/000005.png": "other_name",  # the release does not say how healthy images are named
        "healthy/000005_healthy.png": "other_name",
        "README.md": "not_png",
        "lesion_mapped/000001_with_not_a_disease_from_56_000002.png": "unknown_disease",
        "lesion_mapped/000001_with_melanoma_from_99_000002.png": "unknown_tone",
        "lesion_mapped/999999_with_melanoma_from_56_000002.png": "unknown_base",
        "lesion_mapped/000001_with_melanoma_from_12_000002.png": "tone_differs",  # 000002 is 56
        "lesion_mapped/000001_with_basal_cell_carcinoma_from_56_000002.png": "disease_differs",
    }
    for name in unknown:
        (folder / name).write_bytes(PNG)
    return {"folder": folder, "rows": rows, "test": test, "expected": expected, "unknown": unknown}


def _index(out: Path) -> dict[str, dict]:
    with open(out / "release_index.csv", newline="") as f:
        return {r["file"]: r for r in csv.DictReader(f)}


def _run(release, shared_data, out: Path, *extra) -> int:
    return main(["-q", "import-release", str(release["folder"]), "--metadata", str(shared_data / "ddi_metadata.csv"),
                 "--out", str(out), *extra])


@pytest.mark.parametrize("rule", ["strict", "paper"])
def test_every_lesion_map_gets_its_lineage_and_split(release, shared_data, tmp_path, rule):
    out = tmp_path / "out"
    assert _run(release, shared_data, out, "--rule", rule) == 0
    index = _index(out)
    files = {p.relative_to(release["folder"]).as_posix() for p in release["folder"].rglob("*") if p.is_file()}
    assert set(index) == files  # every file, once
    assert list(index) == sorted(index)
    joined, test = _joined(), release["test"]
    for name, (base, donor) in release["expected"].items():
        row = index[name]
        b, d = base["DDI_file"][:-4], donor["DDI_file"][:-4]
        held = d in test or (rule == "strict" and b in test)
        assert row == {"file": name, "kind": "lesion_mapped", "base_id": f"ddi:{b}", "donor_id": f"ddi:{d}",
                       "disease": joined[donor["disease"]], "donor_tone": donor["skin_tone"],
                       "split": "test" if held else "train", "reason": ""}
    for name, code in release["unknown"].items():
        assert index[name]["kind"] == "unparsed" and index[name]["split"] == "" and index[name]["reason"]
    report = json.loads((out / "leakage_report.json").read_text())
    assert {c: v["files"] for c, v in report["unparsed"].items()} == {
        c: list(release["unknown"].values()).count(c) for c in set(release["unknown"].values())}
    assert report["holdout"] == {"method": "patchalign24", "seed": 12140420, "file": None, "test_ids": len(test)}
    # the four (base, donor) combinations: strict keeps one in train, the paper's rule two
    assert report["lesion_maps_by_rule"] == {"strict": {"train": 1, "test": 3}, "paper": {"train": 2, "test": 2}}


def test_trainer_csvs_hold_no_test_lineage_and_use_exports_encodings(release, shared_data, tmp_path):
    from builder.published.export import CSV_COLUMNS, FITZPATRICK_OF_DDI_TONE, low_codes

    out = tmp_path / "out"
    assert _run(release, shared_data, out, "--rule", "paper") == 0
    test = {f"ddi:{s}" for s in release["test"]}
    codes = low_codes(set())
    for target in ("patchalign", "fairdisco"):
        with open(out / target / "train.csv", newline="") as f:
            reader = csv.DictReader(f)
            assert tuple(reader.fieldnames) == CSV_COLUMNS
            train = list(reader)
        with open(out / target / "test.csv", newline="") as f:
            held = list(csv.DictReader(f))
        assert {r["source_ids"] for r in held} == test and {r["kind"] for r in held} == {"real"}
        maps = [r for r in train if r["kind"] == "lesion_mapped"]
        # the paper's rule: a held-out base may train (that is what it allows), a held-out donor never
        assert len(maps) == 2 and all(r["source_ids"].split(";")[1] not in test for r in maps)
        assert len([r for r in train if r["kind"] == "real"]) == len(release["rows"]) - len(test)
        for r in maps:
            base, donor = release["expected"][r["hasher"]]
            assert r["skin_tone"] == base["skin_tone"] and r["disease"] == donor["disease"]
            assert int(r["fitzpatrick"]) == FITZPATRICK_OF_DDI_TONE[int(base["skin_tone"])]
            assert int(r["low"]) == codes[donor["disease"]] and r["high"] == str(int(donor["malignant"] == "TRUE"))


def test_other_seed_and_test_ids_file(release, shared_data, tmp_path):
    assert _run(release, shared_data, tmp_path / "s36", "--holdout-seed", "36") == 0
    other = hand_test_set(release["rows"], seed=36)
    assert other != release["test"]
    report = json.loads((tmp_path / "s36" / "leakage_report.json").read_text())
    assert report["holdout"]["seed"] == 36 and report["holdout"]["test_ids"] == len(other)
    index = _index(tmp_path / "s36")
    for name, (base, donor) in release["expected"].items():
        held = {base["DDI_file"][:-4], donor["DDI_file"][:-4]} & other
        assert index[name]["split"] == ("test" if held else "train")
    ids = tmp_path / "ids.txt"
    held = next(iter(release["expected"].values()))[1]["DDI_file"][:-4]
    ids.write_text(f"ddi:{held}\n")
    assert _run(release, shared_data, tmp_path / "ids", "--test-ids", str(ids)) == 0
    index = _index(tmp_path / "ids")
    assert sorted(n for n, r in index.items() if r["split"] == "test") == sorted(
        n for n, (b, d) in release["expected"].items() if held in (b["DDI_file"][:-4], d["DDI_file"][:-4]))


def test_written_forms_are_resolved_against_the_known_names_only():
    from builder.core.errors import ReleaseError
    from builder.published.release.names import disease_codec, parse_name

    codec = disease_codec()
    assert codec["eczema_or_atopic_dermatitis"] == "eczema/atopic dermatitis"
    assert codec["cutaneous_T-cell_lymphoma"] == "cutaneous T-cell lymphoma"
    with pytest.raises(ReleaseError, match="both written 'a_b'"):
        disease_codec(("a b", "a_b"))
    # a `_` that could split the name elsewhere is never tried: no known name, unparsed
    assert parse_name("000001_with_basal_cell_from_carcinoma_from_56_000002.png", codec, {}).code == "unknown_disease"


def test_errors_are_one_line(release, shared_data, tmp_path, capsys):
    assert _run(release, shared_data, tmp_path / "a", "--to-version", "../x") == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["-q", "import-release", "owner/name", "--metadata", str(shared_data / "ddi_metadata.csv"),
                 "--out", str(tmp_path / "b")]) == 2
    assert "needs --revision" in capsys.readouterr().err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    assert _run(release, shared_data, tmp_path / "c") == 2
    assert "not empty" in capsys.readouterr().err
    assert _run(release, shared_data, release["folder"] / "out") == 2
    assert "inside the release folder" in capsys.readouterr().err
    assert not [p for p in release["folder"].iterdir() if p.name.startswith(".")]  # no lock left in it


def test_hub_release_at_a_revision_indexes_like_the_folder(release, shared_data, tmp_path):
    from tests.hub_server import HubServer, Repo

    folder = release["folder"]
    files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with HubServer() as hub:
        repo = Repo("hcarrion/ControllabeGenDDI", "dataset", False)
        first = repo.add_commit(None, "release", files)
        repo.tags["v1"] = first.oid
        repo.branches["main"] = repo.add_commit(first.oid, "later", {**files, "extra.png": PNG}).oid
        hub.repos[("dataset", repo.repo_id)] = repo
        env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
                   HF_HOME=str(tmp_path / "hf_home"), CGDDI_PROGRESS="0", PYTHONPATH=str(REPO))
        p = subprocess.run([sys.executable, "-m", "builder", "-q", "import-release", repo.repo_id, "--revision", "v1",
                            "--metadata", str(shared_data / "ddi_metadata.csv"), "--out", str(tmp_path / "hub")],
                           env=env, capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert _run(release, shared_data, tmp_path / "local") == 0
    index = "release_index.csv"
    assert (tmp_path / "hub" / index).read_bytes() == (tmp_path / "local" / index).read_bytes()  # not main's extra
    source = json.loads((tmp_path / "hub" / "leakage_report.json").read_text())["source"]
    assert source == {"kind": "hub", "repo_id": repo.repo_id, "revision": "v1", "commit": first.oid}
