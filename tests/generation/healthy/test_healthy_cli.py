"""`generate healthy` end to end: DDI-layout ingest + sDDI masks, two accelerate processes, kill -9 and resume."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from builder.cli import main
from builder.core.store import StageStore, encode_png
from tests.healthy_fixtures import fitz17k_real_store
from tests.generation.healthy.test_healthy import _files

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ddi_source(shared_data, tmp_path_factory):
    """A DDI-layout folder: synthetic photos (DDI photos never exist here), real metadata rows, real sDDI masks.

    The first six masked DDI ids, plus one id without an sDDI mask (an image without a mask).
    """
    src = tmp_path_factory.mktemp("ddi")
    masked = {p.stem for p in (shared_data / "sddi_masks").glob("*.npy")}
    rows = list(csv.DictReader((shared_data / "ddi_metadata.csv").open()))
    keep = [r for r in rows if Path(r["DDI_file"]).stem in masked][:6]
    keep.append(next(r for r in rows if Path(r["DDI_file"]).stem not in masked))
    with (src / "ddi_metadata.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    for i, r in enumerate(keep):
        rgb = np.clip(np.random.default_rng(i).normal(160, 20, (120, 160, 3)), 0, 255).astype(np.uint8)
        (src / r["DDI_file"]).write_bytes(encode_png(rgb))
    return src, shared_data / "sddi_masks"


def _cli(*argv: str) -> list[str]:
    """The command with the weight-free backend (version 1.1's own generator needs pinned model weights)."""
    return ["generate", "healthy", "--backend", "opencv", *argv]


def test_command_ingests_then_heals_with_summary(ddi_source, tmp_path, capsys):
    src, masks = ddi_source
    out = tmp_path / "out"
    assert main(_cli("--source", str(src), "--masks", str(masks), "--out", str(out), "--shard-size", "2")) == 0
    text = capsys.readouterr().out
    assert "[ingest] done=7" in text
    assert "[healthy] done=6 skipped=0 rejected=1 (missing_mask=1)" in text
    assert "total in" in text and "6 images, 1 rejected" in text
    (rej,) = StageStore(out / "healthy").rejections()
    assert rej.reason == "missing_mask" and rej.path.endswith(".png")
    # Rerun: everything is done, nothing is redone.
    assert main(_cli("--source", str(src), "--masks", str(masks), "--out", str(out), "--shard-size", "2")) == 0
    assert "[healthy] done=0 skipped=7" in capsys.readouterr().out


def test_command_rejects_revision_without_model(ddi_source, tmp_path, capsys):
    src, masks = ddi_source
    assert main(_cli("--source", str(src), "--out", str(tmp_path), "--revision", "abc")) == 2
    assert "--revision given without --model" in capsys.readouterr().err


@pytest.mark.slow  # two accelerate ranks
def test_accelerate_two_processes_same_files_as_one(ddi_source, tmp_path, capsys):
    src, masks = ddi_source
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(_cli("--source", str(src), "--masks", str(masks), "--out", str(one), "--shard-size", "2")) == 0
    # `accelerate launch --cpu` starts a single process; --multi_gpu + --device cpu gives N CPU ranks.
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(29500 + os.getpid() % 1000),
           "-m", "builder", "-q", *_cli("--source", str(src), "--masks", str(masks), "--out", str(two),
                                        "--shard-size", "2", "--device", "cpu")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0/2" in proc.stdout and "rank 1/2" in proc.stdout
    assert _files(StageStore(two / "healthy")) == _files(StageStore(one / "healthy"))
    assert _files(StageStore(two / "real")) == _files(StageStore(one / "real"))


@pytest.mark.slow  # kill -9 and resume
def test_kill_9_then_rerun_ends_with_same_bytes(shared_data, tmp_path):
    real = StageStore(tmp_path / "real")
    fitz17k_real_store(shared_data, real, limit=12)
    argv = [sys.executable, "-m", "builder", "-q", *_cli("--source", str(real.root), "--shard-size", "1")]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run(argv + ["--out", str(clean)], cwd=REPO, check=True, capture_output=True, timeout=120)

    proc = subprocess.Popen(argv + ["--out", str(killed)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    markers = killed / "healthy" / "records"
    while proc.poll() is None and len(list(markers.glob("*.jsonl"))) < 3:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(markers.glob("*.jsonl")))
    assert 3 <= finished < 12, "the run finished before it could be killed"

    resumed = subprocess.run(argv + ["--out", str(killed)], cwd=REPO, check=True, capture_output=True,
                             text=True, timeout=120)
    assert f"skipped={finished}" in resumed.stdout
    # A write cut by the kill leaves at most a hidden `.name.pid.tmp` file, never a partial image.
    after = {k: v for k, v in _files(StageStore(killed / "healthy")).items() if not k.endswith(".tmp")}
    assert after == _files(StageStore(clean / "healthy"))
