"""Adversarial configs, flags and installs: a version name is never a path, an install that fails leaves
the published version whole, only a version folder is ever replaced, bad values are one line (exit 2).

Destructive attacks run in temporary folders and check that a planted user file survives."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from builder.build.manifest import install_version
from builder.cli import main
from builder.core.config import CONFIG_DIR, load_config
from builder.core.errors import BuildError, ConfigError
from builder.core.store import encode_png


def _config_named(tmp_path, version: str):
    text = (CONFIG_DIR / "1.1.yaml").read_text().replace('version: "1.1"', f"version: {json.dumps(version)}")
    path = tmp_path / "evil.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("version", ["../victim", "", "..", "a/b", "/abs", ".hidden"])
def test_a_version_is_a_name_never_a_path(tmp_path, capsys, version):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("mine")
    out = tmp_path / "out"
    (out / "1.0").mkdir(parents=True)
    (out / "1.0" / "manifest.json").write_text("{}")
    rc = main(["-q", "build", "--version", str(_config_named(tmp_path, version)), "--out", str(out)])
    assert rc == 2 and "not a version name" in capsys.readouterr().err
    assert (victim / "precious.txt").read_text() == "mine" and (out / "1.0" / "manifest.json").is_file()
    with pytest.raises(ConfigError):
        dataclasses.replace(load_config("1.1"), version=version)


@pytest.mark.parametrize("command", ["export patchalign --out x", "evaluate --model m", "push --repo-id a/b"])
def test_commands_refuse_a_version_that_is_a_path(tmp_path, capsys, command):
    rc = main([*command.split(), "--version", "../../etc", *(["--out", str(tmp_path)] if "push" in command else [])])
    assert rc == 2 and "not a version name" in capsys.readouterr().err


def _staged(root, name, content: str):
    folder = root / ".staging" / name
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text(content)
    (folder / "manifest.json").write_text(json.dumps({"files": [{"path": "data.txt", "sha256": content}]}))
    return folder


def test_a_failed_install_leaves_the_published_version_whole(tmp_path, monkeypatch):
    out_dir = tmp_path / "1.1"
    install_version(_staged(tmp_path, "a", "old"), out_dir, overwrite=False)
    real_replace = os.replace

    def full_disk(src, dst):
        if str(src).endswith("/b"):  # the new version moving in
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        install_version(_staged(tmp_path, "b", "new"), out_dir, overwrite=True)
    assert (out_dir / "data.txt").read_text() == "old" and (out_dir / "manifest.json").is_file()


def test_install_never_replaces_a_folder_no_build_made(tmp_path):
    out_dir = tmp_path / "1.1"
    out_dir.mkdir()
    (out_dir / "thesis.tex").write_text("mine")
    with pytest.raises(BuildError, match="no build made"):
        install_version(_staged(tmp_path, "a", "new"), out_dir, overwrite=True)
    assert (out_dir / "thesis.tex").read_text() == "mine"


def test_non_utf8_table_is_one_line_on_the_default_build(tmp_path, capsys):
    src = tmp_path / "ddi"
    src.mkdir()
    (src / "000001.png").write_bytes(encode_png(np.full((80, 80, 3), 128, np.uint8)))
    (src / "ddi_metadata.csv").write_bytes(b"DDI_ID,DDI_file,skin_tone,malignant,disease\n"
                                           b"1,000001.png,12,FALSE,melanoma-in-situ \xff\n")
    rc = main(["-q", "build", "--version", "1.1", "--source", str(src), "--out", str(tmp_path / "out"),
               "--cpu-stand-in"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "ddi_metadata.csv" in err and "UTF-8" in err


@pytest.mark.parametrize("argv", [
    ["build", "--version", "1.1", "--limit", "-1"], ["build", "--version", "1.1", "--workers", "-1"],
    ["audit", "x", "--phash-hamming", "-1"], ["audit", "x", "--workers", "0"],
    ["curate", "--source", "x", "--limit", "0"], ["generate", "lesion-map", "--budget", "-5"]])
def test_out_of_range_flags_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "out of range" in capsys.readouterr().err


def test_a_single_value_flag_given_twice_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["build", "--version", "1.1", "--out", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert e.value.code == 2 and "give --out once" in capsys.readouterr().err


def test_a_budget_whose_plan_cannot_fit_is_refused_with_an_estimate(monkeypatch):
    from generation.lesion_map.stage import check

    cfg = load_config("1.1").lesion_map
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 2**21}[name])  # 8 GiB
    with pytest.raises(ConfigError, match=r"about 6\.0 GiB.*at most 67,108,864"):
        check(dataclasses.replace(cfg, budget=100_000_000))
    check(dataclasses.replace(cfg, budget=120))


@pytest.mark.parametrize("linked", ["version", "work"])
def test_a_build_never_writes_through_a_linked_folder(tmp_path, capsys, linked):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine")
    out = tmp_path / "out"
    link = out / "1.1" if linked == "version" else out / ".work" / "1.1"
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    assert main(["-q", "build", "--version", "1.1", "--out", str(out)]) == 2
    assert "is a link" in capsys.readouterr().err
    assert [p.name for p in elsewhere.iterdir()] == ["precious.txt"]
