"""The walking skeleton: `build --version 1.1` on the demo source (the session's `demo_v11`), loaded back
with `datasets`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

from builder.build import BuildOptions, build
from builder.core.config import load_config
from builder.core.errors import BuildError, ConfigError
from tests.demo_build import copy_out


@pytest.fixture(scope="module")
def built(demo_v11):
    return load_config("1.1"), demo_v11


def test_build_writes_hub_layout(built):
    cfg, result = built
    out = result.out_dir
    assert (out / "README.md").is_file() and (out / "manifest.json").is_file()
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert names and all(n.startswith("data/") for n in names)
    for n in names:
        config, fname = n.split("/")[1:]
        assert config in ("healthy", "lesion_mapped", "semantic")
        split, rest = fname.split("-", 1)
        assert split in ("train", "validation", "test") and rest.endswith("-of-00001.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    from builder.build.pipeline import BuildOptions, apply_stand_in

    ran, stood = apply_stand_in(cfg, BuildOptions())  # the demo runs v1.1's CPU stand-in, and says so
    assert manifest["config_hash"] == ran.config_hash() and manifest["stand_in"] == stood
    assert sum(f["rows"] for f in manifest["files"] if "config" in f) == len(result.records)


def test_load_dataset_gives_splits_and_classlabels(built):
    _, result = built
    ds = datasets.load_dataset(str(result.out_dir))
    assert set(ds) == {"train", "validation", "test"}
    assert sum(d.num_rows for d in ds.values()) == len(result.records)
    f = ds["train"].features
    for col in ("skin_tone", "malignant", "kind"):
        assert isinstance(f[col], datasets.ClassLabel), col
    assert isinstance(f["image"], datasets.Image)
    row = ds["train"][0]
    assert row["image"].mode == "RGB" and row["image"].size[0] >= 256
    kinds = {f["kind"].int2str(k) for d in ds.values() for k in d["kind"]}
    assert kinds == {"healthy", "lesion_mapped"}
    assert all(d["split"] == [s] * d.num_rows for s, d in ds.items())


def test_no_real_image_and_every_row_has_lineage(built):
    _, result = built
    assert result.records and all(r.kind != "real" for r in result.records)
    for r in result.records:
        assert r.source_ids and all(s.startswith("demo:") for s in r.source_ids)
        if r.kind == "lesion_mapped":
            assert r.base_id and r.donor_id and len(r.source_ids) >= 1


@pytest.mark.slow
def test_rebuild_is_byte_identical_and_other_content_refused(built, tmp_path):
    cfg, result = built
    again = build(cfg, BuildOptions(out=tmp_path))
    assert [f["sha256"] for f in again.files] == [f["sha256"] for f in result.files]
    other = load_config("1.1")
    import dataclasses

    other = dataclasses.replace(other, curation=dataclasses.replace(other.curation, split_seed=1))
    with pytest.raises(BuildError, match="--overwrite"):
        build(other, BuildOptions(out=tmp_path))


def test_bad_options_fail_before_work(tmp_path):
    cfg = load_config("1.1")
    with pytest.raises(ConfigError, match="--device 'tpu'"):
        build(cfg, BuildOptions(out=tmp_path, device="tpu"))
    with pytest.raises(ConfigError, match="no build config for version '9.9'"):
        load_config("9.9")
    assert not any(tmp_path.iterdir())


def _builder(*argv, cwd=None) -> subprocess.CompletedProcess:
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("CGDDI_PROGRESS", None)  # the default: bars only on a terminal (stderr here is a pipe)
    return subprocess.run([sys.executable, "-m", "builder", *argv], capture_output=True, text=True, timeout=600,
                          cwd=cwd or repo, env=env)


@pytest.mark.slow
def test_cli_build_prints_summary_table_and_quiet_prints_only_the_summary(tmp_path):
    proc = _builder("build", "--version", "1.1", "--out", str(tmp_path), "--limit", "12")
    assert proc.returncode == 0, proc.stderr
    assert "kind" in proc.stdout and "light" in proc.stdout and str(tmp_path / "1.1") in proc.stdout
    assert "it/s" not in proc.stderr and "img/s" not in proc.stderr  # no bars: stderr is not a terminal
    assert "faiss.loader" not in proc.stderr  # library chatter stays at WARNING without -v
    again = _builder("-q", "build", "--version", "1.1", "--out", str(tmp_path), "--limit", "12")  # resumes: fast
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    summary = [line for line in proc.stdout.splitlines() if line.startswith("built cgDDI")]
    assert len(again.stdout.splitlines()) == 1 and len(summary) == 1
    assert again.stdout.split(",")[0] == summary[0].split(",")[0]  # same rows and shards; timing differs


def test_audit_writes_its_report_beside_the_version_never_into_the_cwd(built, tmp_path):
    _, result = built
    version = copy_out(result, tmp_path / "out") / result.out_dir.name  # the report goes into its .work/
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    proc = _builder("-q", "audit", str(version), cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = version.parent / ".work" / version.name / "audit_report.json"
    assert proc.stdout.splitlines() == [f"CLEAN: 0 leaked rows, 0 integrity problems; report: {report}"]
    assert proc.stderr == ""
    assert json.loads(report.read_text())["ok"] is True
    assert not any(cwd.iterdir())
    assert not (version / "audit_report.json").exists()  # the version folder holds only its files


def test_demo_card_names_the_demo_source_and_the_toolkit_licence(built):
    import yaml

    _, result = built
    card = (result.out_dir / "README.md").read_text()
    front = yaml.safe_load(card.split("---", 2)[1])
    assert front["license"] == "apache-2.0" and front["source_datasets"] == ["original"]
    assert "stable-diffusion" not in front["tags"] and "text-to-image" not in front["task_categories"]
    assert "the toolkit's embedded demo source" in card and "No patient and no real photo" in card
    assert "biopsy" not in card.lower() and "An image of healthy skin" not in card
    assert "## Lesion mapping, as the paper counts it" in card  # the lesion-map stage's delivery reaches the card
    pixels = json.loads((result.out_dir / "manifest.json").read_text())["source_pixels"]
    for kind in ("healthy", "lesion_mapped"):  # every published row measured against its demo photo
        assert pixels[kind]["measured"] == sum(r.kind == kind for r in result.records) > 0
        assert 0.5 < pixels[kind]["identical"]["median"] < 1


def test_load_back_check_names_served_files_and_row_counts(built, tmp_path):
    """The build's last step resolves what `datasets` would serve: an extra shard matching the
    card's globs, or a shard whose footer disagrees with the manifest, stops it with the file named."""
    import shutil

    from builder.build.publish import verify_load

    _, result = built
    copy = tmp_path / "copy"
    shutil.copytree(result.out_dir, copy)
    files = [f for f in json.loads((copy / "manifest.json").read_text())["files"] if "config" in f]
    verify_load(copy, files)  # as built: passes
    extra = copy / "data" / "healthy" / "train-extra.parquet"
    shutil.copy(copy / next(f["path"] for f in files if f["config"] == "healthy" and f["split"] == "train"), extra)
    with pytest.raises(BuildError, match="served but not written: .*train-extra.parquet"):
        verify_load(copy, files)
    extra.unlink()
    wrong = [dict(f, rows=f["rows"] + 1) if f["config"] == "lesion_mapped" and f["split"] == "test" else f
             for f in files]
    with pytest.raises(BuildError, match="config 'all' loads back as"):
        verify_load(copy, wrong)
