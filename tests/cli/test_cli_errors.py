"""Input and environment errors are one line naming the path and the fix (exit 2); Ctrl-C is
one line (exit 130); exit 1 stays "audit found a problem"; nothing half-published."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builder.cli import main

REPO = Path(__file__).resolve().parents[2]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_missing_source_folder(tmp_path, capsys):
    assert main(["-q", "build", "--version", "1.1", "--source", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    line = _one_line(capsys)
    assert str(tmp_path / "nope") in line and line.startswith("error: ")


def test_mistyped_audit_folder_names_the_versions_there(tmp_path, capsys, monkeypatch):
    (tmp_path / "out" / "1.1").mkdir(parents=True)
    (tmp_path / "out" / "1.1" / "manifest.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "out/1.2"]) == 2
    line = _one_line(capsys)
    assert "no folder out/1.2" in line and "out holds versions 1.1" in line
    assert main(["audit", "out"]) == 2  # the parent of a version, not a version
    line = _one_line(capsys)
    assert "not a built version folder" in line and "out/1.1" in line
    assert not (tmp_path / "audit_report.json").exists()


def test_unreachable_hub_is_one_line_exit_2(tmp_path):
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "builder", "audit", "org/name", "--revision", "v1.1"], env=env,
                       capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert p.returncode == 2, p.stderr
    lines = [x for x in p.stderr.splitlines() if x.startswith("error:")]
    assert len(p.stderr.strip().splitlines()) == 1 and lines, p.stderr
    assert "org/name@v1.1" in lines[0] and "HF_ENDPOINT" in lines[0]


def test_push_with_the_hub_unreachable_is_one_line_exit_2(fitz_v11, tmp_path):
    _, folder = fitz_v11  # read only
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"),
               HF_TOKEN="hf_loopbackSECRETtoken0123456789", PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-m", "builder", "push", "--version", "1.1", "--repo-id", "org/name",
                        "--folder", str(folder)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "the Hub at http://127.0.0.1:9 could not be reached" in p.stderr and "SECRET" not in p.stderr


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "no space left on the disk writing in"),
                                        (errno.EROFS, "cannot write in")])
def test_disk_full_or_read_only_is_one_line_and_nothing_published(tmp_path, capsys, monkeypatch, code, words):
    from builder.core.store import StageStore

    real_put = StageStore.put_image
    calls = []

    def put_image(self, sample_id, png):
        calls.append(sample_id)
        if self.root.name == "lesion_mapped":  # fail late: ingest and healthy are done by then
            raise OSError(code, os.strerror(code), str(self.root / "images" / f".{sample_id}.png.1.tmp"))
        return real_put(self, sample_id, png)

    monkeypatch.setattr(StageStore, "put_image", put_image)
    out = tmp_path / "out"
    assert main(["-q", "build", "--version", "1.1", "--out", str(out), "--workers", "1"]) == 2
    line = _one_line(capsys)
    assert words in line and str(out / ".work" / "1.1" / "lesion_mapped" / "images") in line
    assert not (out / "1.1").exists()  # nothing half-published
    assert not list(out.rglob("*.tmp"))


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    return [int(c) for c, p in zip(out[::2], out[1::2]) if int(p) == pid]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _start_build(tmp_path: Path, extra_env: dict | None = None) -> tuple[subprocess.Popen, list[int]]:
    """A demo build with 2 workers, started in its own session like a terminal job; returns it once its
    forkserver has both its workers, with [forkserver, workers...]."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path / "tmp"), **(extra_env or {}))
    (tmp_path / "tmp").mkdir()
    p = subprocess.Popen([sys.executable, "-m", "builder", "-q", "build", "--version", "1.1", "--out",
                          str(tmp_path / "out"), "--workers", "2"], env=env, cwd=tmp_path, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None:
        procs = [(f, _children(f)) for f in _children(p.pid)]
        procs = [(f, w) for f, w in procs if len(w) >= 2]  # both workers started
        if procs:
            return p, [procs[0][0], *procs[0][1]]
        time.sleep(0.05)
    p.kill()
    pytest.fail(f"no worker pool appeared: {p.communicate()}")


def _wait_gone(pids: list[int], limit: float = 60) -> list[int]:
    deadline = time.monotonic() + limit  # a bound on waiting, not a timing assertion
    while time.monotonic() < deadline and any(_alive(x) for x in pids):
        time.sleep(0.1)
    return [x for x in pids if _alive(x)]


def test_ctrl_c_is_one_line_and_every_process_exits(tmp_path):
    """Today: about 90 lines of KeyboardInterrupt tracebacks from three processes."""
    p, procs = _start_build(tmp_path)
    os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted; rerun the same command to resume"]
    assert _wait_gone(procs) == []
    assert not (tmp_path / "out" / "1.1").exists()


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    """Today: after kill -9 of the parent, the forkserver and two workers lived on 14 min and the
    multiprocessing temp folder stayed."""
    p, procs = _start_build(tmp_path)
    assert len(procs) == 3 and list((tmp_path / "tmp").glob("pymp-*"))
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    assert _wait_gone(procs) == []
    assert list((tmp_path / "tmp").iterdir()) == []
