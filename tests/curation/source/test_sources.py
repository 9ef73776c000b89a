"""Source identity: ids named by the source's layout (or --source-name), a source fingerprint from
table, image and mask bytes, recorded in the manifest and part of the build's fingerprint."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.errors import BuildError, ConfigError, SourceError
from builder.core.store import StageStore
from curation.source.ingest import ingest_source, read_source_info
from tests.source_fixtures import make_ddi_folder


@pytest.fixture(scope="module")
def ddi_folder(tmp_path_factory, shared_data):
    return make_ddi_folder(shared_data, tmp_path_factory.mktemp("ddi") / "ddi")


@pytest.fixture(scope="module")
def ddi_build(ddi_folder, tmp_path_factory):
    folder, masks, _ = ddi_folder
    out = tmp_path_factory.mktemp("ddi-build")
    return out, build(load_config("1.1"), BuildOptions(out=out, source=folder, masks=masks, workers=1,
                                                                   stand_in=True))


def _splits(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow  # a real-data build
def test_ddi_layout_gives_ddi_ids_everywhere(ddi_build, ddi_folder):
    out, result = ddi_build
    stems = ddi_folder[2]
    assert result.records and all(s.startswith("ddi:") for r in result.records for s in r.source_ids)
    splits = _splits(out / ".work" / "1.1" / "splits.csv")
    assert sorted(r["source_id"] for r in splits) == [f"ddi:{s}" for s in stems]
    manifest = json.loads((out / "1.1" / "manifest.json").read_text())
    assert manifest["source"]["name"] == "ddi" and manifest["source"]["layout"] == "ddi"
    assert manifest["source"]["table"] == "ddi_metadata.csv"
    assert manifest["source"]["files"] == 2 * len(stems)  # a photo and an sDDI mask each
    assert "demo:" not in (out / "1.1" / "manifest.json").read_text()
    assert "demo:" not in (out / "1.1" / "README.md").read_text()
    import pyarrow.parquet as pq

    ids = {s for f in (out / "1.1" / "data").rglob("*.parquet")
           for row in pq.read_table(f, columns=["source_ids"]).column("source_ids").to_pylist() for s in row}
    assert ids and all(s.startswith("ddi:") for s in ids)


@pytest.mark.slow  # a real-data build
def test_build_fingerprint_differs_from_the_demo_build(ddi_build, demo_v11):
    out, _ = ddi_build
    ddi = json.loads((out / "1.1" / "manifest.json").read_text())
    demo = demo_v11
    demo_m = json.loads((demo.out_dir / "manifest.json").read_text())
    assert demo_m["source"]["name"] == "demo"
    assert all(s.startswith("demo:") for r in demo.records for s in r.source_ids)
    assert demo_m["config_hash"] == ddi["config_hash"]  # same content settings ...
    assert demo_m["build_fingerprint"] != ddi["build_fingerprint"]  # ... other source, other build
    assert demo_m["source"]["fingerprint"] != ddi["source"]["fingerprint"]


@pytest.mark.slow  # a real-data build
def test_another_source_into_a_published_out_is_refused(ddi_build, ddi_folder, tmp_path, shared_data):
    out, _ = ddi_build
    with pytest.raises(BuildError, match=r"built from source 'ddi' .*not from source 'fitz17k'.*--overwrite"):
        build(load_config("1.1"), BuildOptions(out=out, source=shared_data / "fitz17k_lesions", limit=6,
                                               workers=1, stand_in=True))
    # the published version is untouched
    assert json.loads((out / "1.1" / "manifest.json").read_text())["source"]["name"] == "ddi"


def test_fingerprint_follows_table_image_and_mask_bytes(ddi_folder, tmp_path):
    folder, masks, stems = ddi_folder
    copy, mcopy = tmp_path / "copy", tmp_path / "masks"
    shutil.copytree(folder, copy)
    mcopy.mkdir()
    for s in stems:
        shutil.copy(masks / f"{s}.npy", mcopy / f"{s}.npy")

    def fp(src, msk, name=None):
        store = StageStore(tmp_path / "real")
        ingest_source(src, msk, store, source_name=name, workers=1)
        return read_source_info(store)["fingerprint"]

    first = fp(folder, masks)
    assert fp(copy, mcopy) == first  # a copy elsewhere is the same source
    lines = (copy / "ddi_metadata.csv").read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if f",{stems[0]}.png," in ln)
    lines[row] = lines[row].replace("FALSE", "TRUE") if "FALSE" in lines[row] else lines[row].replace("TRUE", "FALSE")
    (copy / "ddi_metadata.csv").write_text("\n".join(lines) + "\n")
    edited_table = fp(copy, mcopy)
    assert edited_table != first
    store = StageStore(tmp_path / "real")  # the rerun re-ingested: the edited row is what the store holds
    rec = next(r for r in store.records() if r.source_ids == [f"ddi:{stems[0]}"])
    assert rec.malignant == ("TRUE" in lines[row])
    import numpy as np

    lm = np.load(mcopy / f"{stems[1]}.npy")
    skin = np.argwhere(lm == 4)[0]
    lm[tuple(skin)] = 0  # one skin pixel becomes background
    np.save(mcopy / f"{stems[1]}.npy", lm)
    assert fp(copy, mcopy) not in (first, edited_table)
    assert fp(folder, masks, name="clinic2") != first  # the name prefixes every id: part of the source


def test_source_name_override_and_bad_names(ddi_folder, tmp_path):
    folder, masks, stems = ddi_folder
    store = StageStore(tmp_path / "real")
    ingest_source(folder, masks, store, source_name="clinic2", workers=1)
    assert sorted(s for r in store.records() for s in r.source_ids) == [f"clinic2:{s}" for s in stems]
    assert read_source_info(store)["name"] == "clinic2"
    with pytest.raises(SourceError, match=r"source name 'DDI:x' cannot prefix ids"):
        ingest_source(folder, masks, StageStore(tmp_path / "r2"), source_name="DDI:x")
    with pytest.raises(ConfigError, match="--source-name demo2 names a --source folder"):
        build(load_config("1.1"), BuildOptions(out=tmp_path / "o", source_name="demo2"))


@pytest.mark.slow  # a real-data build
def test_fitz17k_folder_gives_fitz17k_ids(shared_data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "builder", "-q", "build", "--version", "1.1", "--out", str(tmp_path),
                           "--source", str(shared_data / "fitz17k_lesions"), "--limit", "12", "--workers", "1", "--cpu-stand-in"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "1.1" / "manifest.json").read_text())
    assert manifest["source"]["name"] == manifest["source"]["layout"] == "fitz17k"
    ids = [r["source_id"] for r in _splits(tmp_path / ".work" / "1.1" / "splits.csv")]
    assert len(ids) == 12 and all(s.startswith("fitz17k:") for s in ids)


@pytest.mark.slow  # a real-data build
def test_ddi_layout_build_card_has_ddi_terms_gating_and_measured_pixels(ddi_build):
    import yaml

    out, result = ddi_build
    folder = out / "1.1"
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---", 2)[1])
    assert front["license"] == "other" and front["license_link"] == "LICENSE.md"
    assert front["extra_gated_prompt"] and "checkbox" in front["extra_gated_fields"].values()
    assert "research-use terms" in (folder / "LICENSE.md").read_text()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert f"`{manifest['source']['fingerprint']}`" in card
    pixels = manifest["source_pixels"]
    assert pixels["healthy"]["measured"] == sum(r.kind == "healthy" for r in result.records) > 0
    assert "## Source pixels in the images" in card and "toolkit's embedded demo" not in card
