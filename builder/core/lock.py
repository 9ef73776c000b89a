"""Work-folder locks: one run at a time per folder; a second run refuses, naming the holder.

The lock is an OS file lock (`filelock`, flock on POSIX) on `<parent>/.<folder>.lock`, beside the
folder so that replacing or emptying the folder keeps it. The kernel releases it when its process
dies, even by kill -9. `<parent>/.<folder>.lock.json` names the holder (pid, host, start time,
command); a run that finds such a file left behind by a dead holder takes over with a note.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from builder.core.errors import LockError
from builder.core.store import atomic_write

log = logging.getLogger(__name__)


def lock_paths(folder: str | os.PathLike) -> tuple[Path, Path]:
    """(lock file, holder file) of a work folder."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock", folder.parent / f".{folder.name}.lock.json"


@contextlib.contextmanager
def hold(folder: str | os.PathLike, command: str | None = None) -> Iterator[dict]:
    """Hold `folder`'s lock for the block; raises LockError at once when another run holds it.
    The holder is described by its command line under `python -m builder`, else by `command`."""
    import filelock

    lock_file, holder_file = lock_paths(folder)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_file, timeout=0, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockError(f"{folder} is in use by {describe(read_holder(holder_file))}; wait for that run to "
                        "finish (or stop it), or use another output folder") from None
    try:
        left = read_holder(holder_file)
        if left:  # the previous holder died without cleaning up (the OS already released its lock)
            log.warning("note: taking over the lock on %s from %s, which %s", folder, describe(left),
                        "is no longer running" if not pid_alive(left.get("pid")) else "ended without releasing it")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": _argv() if _cli() else command or _argv(),
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        atomic_write(holder_file, (json.dumps(me, sort_keys=True) + "\n").encode())
        yield me
    finally:
        with contextlib.suppress(FileNotFoundError):
            if read_holder(holder_file).get("pid") == os.getpid():
                holder_file.unlink()
        lock.release()


def read_holder(holder_file: Path) -> dict:
    try:
        return json.loads(holder_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def describe(holder: dict) -> str:
    """One line naming a holder: pid, host, start time, command."""
    if not holder:
        return "another process (it has not written its pid yet)"
    return (f"pid {holder.get('pid')} on {holder.get('host')} (started {holder.get('started')}, "
            f"command: {holder.get('command')})")


def pid_alive(pid) -> bool:
    """Whether a process with this pid runs on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _cli() -> bool:
    """Whether this process is `python -m builder` (then its argv is the most useful description)."""
    return bool(sys.argv) and Path(sys.argv[0]).as_posix().endswith("builder/__main__.py")


def _argv() -> str:
    prog = "python -m builder" if _cli() else sys.argv[0] if sys.argv else "python"
    return " ".join([prog, *sys.argv[1:]])
