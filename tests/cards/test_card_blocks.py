"""Every code block of the card runs as written, on the version it describes: the demo v1.1 build and a
Fitzpatrick17k build, each pushed to the loopback Hub (the push puts the repo id in place of `ORG/NAME`,
the only change), then the card's Python blocks run in order in one fresh interpreter, its shell blocks
in bash, its JSON blocks parse."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.hub_server import HubServer

TOKEN = "hf_loopbackSECRETtoken0123456789"
REPO = "cgddi-lab/cgddi"
ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def _env(hub: HubServer, tmp_path: Path) -> dict:
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1", HF_TOKEN=TOKEN,
               HF_HOME=str(tmp_path / "hf_home"), CGDDI_PROGRESS="0", HF_DATASETS_DISABLE_PROGRESS_BARS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return env


def _pushed_card(hub: HubServer, env: dict, folder: Path) -> str:
    version = folder.name
    p = subprocess.run([sys.executable, "-m", "builder", "push", "--version", version, "--repo-id", REPO,
                        "--folder", str(folder)], env=env, capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    return hub.commits_on(REPO)[0].files["README.md"].decode()


def _run_blocks(card: str, env: dict, tmp_path: Path) -> Counter:
    blocks = BLOCK.findall(card)
    langs = Counter(lang for lang, _ in blocks)
    assert set(langs) <= {"python", "bash", "json", "bibtex"}, langs  # a new kind of block needs a runner here
    script = "\n\n".join(code for lang, code in blocks if lang == "python")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, f"the card's Python blocks fail:\n{script}\n{p.stderr[-3000:]}"
    for code in (code for lang, code in blocks if lang == "bash"):
        p = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True,
                           cwd=tmp_path)
        assert p.returncode == 0, f"the card's shell block fails:\n{code}\n{p.stdout[-1500:]}{p.stderr[-1500:]}"
    for code in (code for lang, code in blocks if lang == "json"):
        json.loads(code)
    return langs


def test_every_block_of_the_demo_card_runs(demo_v11, tmp_path):
    with HubServer(token=TOKEN) as hub:
        env = _env(hub, tmp_path)
        card = _pushed_card(hub, env, demo_v11.out_dir)
        assert 'stratify_by_column="disease"' in card and 'input_columns="kind"' in card
        langs = _run_blocks(card, env, tmp_path)
    assert langs["python"] >= 4 and langs["bash"] >= 1


def test_every_block_of_a_fitzpatrick17k_card_runs(fitz_v11, tmp_path):
    with HubServer(token=TOKEN) as hub:
        env = _env(hub, tmp_path)
        card = _pushed_card(hub, env, fitz_v11[1])
        # too few train rows per Fitzpatrick17k class to stratify by disease: the card offers what works
        assert 'stratify_by_column="disease"' not in card and "Stratifying by `disease` fails" in card
        langs = _run_blocks(card, env, tmp_path)
    assert langs["python"] >= 4 and langs["bash"] >= 1
