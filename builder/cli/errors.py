"""How the CLI reports failures: one line naming the path and the fix; exit 2 for input and
environment errors, 130 for Ctrl-C (exit 1 stays "audit found a problem")."""
from __future__ import annotations

import errno
import os

INTERRUPTED = "interrupted; rerun the same command to resume"


def describe(e: BaseException) -> str | None:
    """One line for an environment error (disk, permissions, missing paths, network, a dead worker),
    or None for anything else (a bug: the traceback is worth showing)."""
    from builder.core.models import missing_model_stack

    if missing_model_stack(e):
        return missing_model_stack(e)
    if isinstance(e, OSError) and not _is_network(e):
        return _os_error(e)
    if _is_network(e):
        hub = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        return (f"the Hub at {hub} could not be reached or refused the request ({_first_line(e)}); check the "
                "network, HF_ENDPOINT, the token and the repo id, then rerun the same command")
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(e, BrokenProcessPool):
        return ("a worker process died (out of memory, or killed); finished shards are kept: rerun the same "
                "command to resume, with fewer --workers if memory is short")
    return None


def _os_error(e: OSError) -> str:
    where = e.filename or "a file"
    folder = os.path.dirname(str(where)) or "."  # atomic writes fail on a hidden temp name: name its folder
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the disk writing in {folder}; free space or pass --out on another disk, "
                "then rerun the same command to resume (nothing half-written was published)")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write in {folder} ({e.strerror}); make that folder writable or pass --out DIR "
                "somewhere writable")
    if e.errno == errno.ENOENT:
        return f"{where} does not exist ({e.strerror}); check the path"
    return f"{where}: {e.strerror or e}; check the path and the disk, then rerun the same command"


def _is_network(e: BaseException) -> bool:
    top = (type(e).__module__ or "").split(".")[0]  # httpx, httpx2, httpcore, ... whichever the hub client uses
    return top in ("huggingface_hub", "requests", "urllib3") or top.startswith(("httpx", "httpcore")) or \
        isinstance(e, (ConnectionError, TimeoutError))


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]
