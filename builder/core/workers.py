"""Worker process pools that die with their parent and stay quiet on Ctrl-C.

Every pool of the toolkit is made here: forkserver processes (a forked child of a process that
already ran polars' or torch's thread pools can deadlock), each started with `_worker_init`:

- SIGINT is ignored in workers: on Ctrl-C only the parent stops (one line, see `builder.cli`),
  and it terminates its workers, instead of three processes printing KeyboardInterrupt tracebacks;
- a worker exits when the process that made the pool dies, even by `kill -9`. Workers are
  children of the forkserver, not of that process, so `prctl(PR_SET_PDEATHSIG)` would fire only
  when the forkserver dies, and the forkserver outlives its owner for as long as any worker
  holds the alive-pipe the owner hands to each of them (that is what kept a forkserver and two
  workers alive 14 minutes after `kill -9`). So a daemon thread in each worker blocks on a pidfd
  of the owner (Linux >= 5.3; polling `os.kill(pid, 0)` each second elsewhere), removes the
  owner's multiprocessing temp folder (`pymp-*`, the forkserver's socket) and calls `os._exit`;
  with the last worker gone the forkserver's alive-pipe closes and it exits too.

Workers never run the caller's main script. forkserver and spawn re-run `__main__` from its file in
the server and in each worker (as `__mp_main__`), so a plain script calling `build()` without
`if __name__ == "__main__":` started a second build in every worker, which stopped on the first
one's lock (`python -` re-ran `<stdin>` and failed). Every task the toolkit submits is a function
of its own packages, so while a pool lives `__main__` is presented as a module without a file
(`_main_not_reimported`), as a notebook's is: workers import only what the tasks name.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

OWNER_GONE_EXIT = 70  # a worker's exit status when its pool's owner died


def pool_context():
    """forkserver, not fork: a forked child of a process that already ran polars' (or torch's)
    thread pools can deadlock; forkserver children start from a clean single-threaded server."""
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def map_jobs(fn, jobs: list, workers: int | None, desc: str, per_worker: int, chunksize: int) -> list:
    """`fn` over `jobs` in order with a progress bar: in this process when one worker is asked for or there
    are fewer than `per_worker` jobs per worker (a pool costs ~2 s to start), else in a `worker_pool`."""
    from builder.core.progress import progress

    workers = max(1, workers or os.cpu_count() or 1)
    if workers == 1 or len(jobs) < per_worker * workers:
        return list(progress(map(fn, jobs), desc=desc, total=len(jobs)))
    with worker_pool(workers) as pool:
        return list(progress(pool.map(fn, jobs, chunksize=chunksize), desc=desc, total=len(jobs)))


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator["concurrent.futures.ProcessPoolExecutor"]:  # noqa: F821
    """A ProcessPoolExecutor of `workers` processes; on any exception (Ctrl-C included) its workers
    are terminated and pending work cancelled, instead of finishing every queued task first."""
    from concurrent.futures import ProcessPoolExecutor

    from multiprocessing.util import get_temp_dir

    ctx = pool_context()
    with _main_not_reimported():  # workers start lazily, at any submit: for the pool's whole life
        _start_forkserver_ignoring_sigint(ctx)
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(os.getpid(), get_temp_dir()))
        try:
            yield pool
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)


@contextlib.contextmanager
def _main_not_reimported() -> Iterator[None]:
    """Hide the main script's file from multiprocessing while workers start, so they do not re-run it.

    multiprocessing's `spawn.get_preparation_data` sends `__main__.__file__` to each new process
    (and to the forkserver) when `__main__` has no module spec (`python script.py`, `python -`);
    `python -m pkg` and notebooks need nothing. The attribute is restored when the pool closes."""
    main = sys.modules.get("__main__")
    if main is None or getattr(getattr(main, "__spec__", None), "name", None) or not hasattr(main, "__file__"):
        yield
        return
    saved = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = saved


def _start_forkserver_ignoring_sigint(ctx) -> None:
    """Start the forkserver with SIGINT ignored, so every worker it forks ignores SIGINT from its first
    instruction: a worker only starts ignoring it in `_worker_init`, and a Ctrl-C landing before that
    (while the pool is still starting workers) printed a KeyboardInterrupt traceback from the worker.
    A process that starts with SIGINT ignored keeps it so (Python installs its handler only over SIG_DFL)."""
    if ctx.get_start_method() != "forkserver" or threading.current_thread() is not threading.main_thread():
        return
    from multiprocessing import forkserver

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is not None:
        return  # already running (and started here): no window in which a Ctrl-C would be ignored
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)


def _terminate(pool) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())  # CPython's attribute, 3.8-3.13
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()
    for p in processes:
        p.join(timeout=5)


def _worker_init(owner: int, owner_tmp: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(owner, owner_tmp), name="owner-watch", daemon=True).start()


def _exit_when_gone(owner: int, owner_tmp: str) -> None:
    import select
    import shutil
    import time

    from builder.core.lock import pid_alive

    try:
        fd = os.pidfd_open(owner)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
        fd = None
    if fd is not None:
        select.select([fd], [], [])  # readable once the owner has exited
    else:
        while pid_alive(owner):
            time.sleep(1.0)
    shutil.rmtree(owner_tmp, ignore_errors=True)  # the owner cannot: it died without its finalizers
    os._exit(OWNER_GONE_EXIT)
