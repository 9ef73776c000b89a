"""Chained fingerprints: a rebuild reruns exactly the stages whose source or settings changed, and says so."""
import dataclasses
import json
import shutil

import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.errors import BuildError
from builder.demo_source import write_demo_source

pytestmark = pytest.mark.slow  # every test rebuilds a 12-photo source end to end


def _cfg(**lesion_map):
    cfg = load_config("1.1")
    return dataclasses.replace(cfg, lesion_map=dataclasses.replace(cfg.lesion_map, budget=24, **lesion_map))


def _shas(result, config: str) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in result.files if f["config"] == config}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp")
    source = write_demo_source(root / "source", 12, 7)
    result = build(_cfg(), BuildOptions(out=root / "out", source=source, masks=source / "masks", workers=1, stand_in=True))
    return root, source, result


def _copy(base, tmp_path):
    root, source, result = base
    shutil.copytree(root / "out", tmp_path / "out")
    shutil.copytree(source, tmp_path / "source")
    return tmp_path / "out", tmp_path / "source", result


def test_first_build_is_new_and_an_unchanged_rebuild_reuses_every_stage(base, tmp_path):
    out, source, first = _copy(base, tmp_path)
    assert first.decisions == {"ingest": "new", "healthy": "new", "lesion_map": "new"}
    again = build(_cfg(), BuildOptions(out=out, source=source, masks=source / "masks", workers=1, stand_in=True))
    assert again.decisions == {"ingest": "reused", "healthy": "reused", "lesion_map": "reused"}
    assert [f["sha256"] for f in again.files] == [f["sha256"] for f in first.files]
    manifest = json.loads((out / "1.1" / "manifest.json").read_text())
    assert set(manifest["stage_fingerprints"]) == {"ingest", "splits", "healthy", "lesion_map"}


def test_a_lesion_map_setting_reruns_lesion_map_only(base, tmp_path):
    out, source, first = _copy(base, tmp_path)
    opts = BuildOptions(out=out, source=source, masks=source / "masks", workers=1, stand_in=True)
    with pytest.raises(BuildError, match="another config.*--overwrite"):
        build(_cfg(feather=0.5), opts)
    result = build(_cfg(feather=0.5), dataclasses.replace(opts, overwrite=True))
    assert result.decisions == {"ingest": "reused", "healthy": "reused",
                                "lesion_map": "rerun because lesion_map.feather changed"}
    assert _shas(result, "healthy") == _shas(first, "healthy")
    assert _shas(result, "lesion_mapped") != _shas(first, "lesion_mapped")
    mapped = [r for r in result.records if r.kind == "lesion_mapped"]
    assert mapped and all(r.params["feather"] == 0.5 for r in mapped)


def test_an_edited_metadata_row_reruns_every_stage_it_feeds(base, tmp_path):
    out, source, first = _copy(base, tmp_path)
    table = source / "ddi_metadata.csv"
    lines = table.read_text().splitlines()
    assert lines[1].startswith("0,1,000001.png,12,")
    lines[1] = lines[1].replace(",12,", ",56,")  # ddi:000001 becomes Fitzpatrick V-VI
    table.write_text("\n".join(lines) + "\n")
    opts = BuildOptions(out=out, source=source, masks=source / "masks", workers=1, stand_in=True)
    with pytest.raises(BuildError, match=r"built from source 'ddi' \(fingerprint \w+\), not from source 'ddi'.*--overwrite"):
        build(_cfg(), opts)  # the reproduction: the old rows are not republished
    assert {f["path"]: f["sha256"] for f in json.loads((out / "1.1" / "manifest.json").read_text())["files"]
            if f.get("config") == "healthy"} == _shas(first, "healthy")
    result = build(_cfg(), dataclasses.replace(opts, overwrite=True))
    assert result.decisions["ingest"] == "rerun because source changed"
    assert result.decisions["healthy"] == "rerun because real changed"
    assert result.decisions["lesion_map"].startswith("rerun because bases, donors")
    before = {r.sample_id: r.skin_tone for r in first.records if r.source_ids == ["ddi:000001"]}
    after = {r.sample_id: r.skin_tone for r in result.records if r.source_ids == ["ddi:000001"]}
    assert set(before.values()) == {"light"} and set(after.values()) == {"dark"}


def test_a_swapped_source_folder_is_refused_then_rebuilt_with_new_rows(base, tmp_path):
    out, _, first = _copy(base, tmp_path)
    other = write_demo_source(tmp_path / "other", 12, 8)
    opts = BuildOptions(out=out, source=other, masks=other / "masks", workers=1, stand_in=True)
    with pytest.raises(BuildError, match=r"not from source 'ddi'.*--overwrite"):
        build(_cfg(), opts)
    result = build(_cfg(), dataclasses.replace(opts, overwrite=True))
    assert set(result.decisions.values()) == {"rerun because source changed", "rerun because real changed",
                                              result.decisions["lesion_map"]}
    assert result.decisions["lesion_map"].startswith("rerun because")
    assert {r.sample_id for r in result.records}.isdisjoint(r.sample_id for r in first.records)
    published = json.loads((out / "1.1" / "manifest.json").read_text())
    assert published["stage_fingerprints"]["ingest"] != json.loads(
        (base[0] / "out" / "1.1" / "manifest.json").read_text())["stage_fingerprints"]["ingest"]
