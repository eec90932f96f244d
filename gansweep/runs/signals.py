"""SIGTERM (cluster pre-emption, kill) and SIGINT (Ctrl-C) during training: the loop stops
at the next batch boundary with a checkpoint, and raises ``Interrupted``.

A job that a launcher runs in a child process of its own (joblib's workers, submitit's local
jobs) would outlive a launcher killed with kill -9 and train on, holding its run dir's lock,
so a relaunch would find the dir busy: ``watch_launcher`` sends such a job SIGTERM once its
launcher is gone, and it stops as above (``orphaned`` then says so, and the worker exits):
``launcher_watch``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager

log = logging.getLogger(__name__)

# "<pid>@<host>" of the process that launches a sweep's jobs, for the jobs it starts
LAUNCHER = "GANSWEEP_LAUNCHER"
_watch: dict[str, object] = {}


class Interrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was written at the next batch boundary."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextmanager
def on_stop_signals(handler):
    """SIGTERM and SIGINT go to ``handler`` inside the block (the main thread only: Python
    delivers signals there); the previous handlers come back after."""
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def mark_launcher() -> None:
    """Name this process as the launcher of the jobs it starts from now on (inherited by its
    child processes)."""
    os.environ[LAUNCHER] = f"{os.getpid()}@{socket.gethostname()}"


def _launcher() -> int | None:
    """The launcher's pid when this process is a job the launcher started as its own child on
    this host (not the launcher itself, nor a job on another machine), else None."""
    pid, _, host = os.environ.get(LAUNCHER, "").partition("@")
    if not pid.isdigit() or host != socket.gethostname():
        return None
    pid = int(pid)
    return pid if pid != os.getpid() and os.getppid() == pid else None


def _watch_thread(launcher: int, poll: float, grace: float) -> None:
    while os.getppid() == launcher:
        time.sleep(poll)
    _watch["orphaned"] = True
    if not _watch.get("job"):
        os._exit(0)  # an idle worker: nothing to stop, nothing to say
    log.warning("the launcher (pid %d) is gone: stopping this job (pid %d) with a checkpoint; "
                "run the same command again to resume", launcher, os.getpid())
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    os._exit(128 + signal.SIGTERM)


@contextmanager
def launcher_watch(poll: float = 1.0, grace: float = 300.0):
    """Run a job under watch when its launcher started this process as its own child: once
    the launcher is gone (this process gets another parent), a daemon thread sends this
    process SIGTERM, so a run in training stops at its next batch boundary with a checkpoint
    and releases its dir; a process that still lives ``grace`` seconds later exits, and an
    idle worker exits at once. One thread per process (a worker runs many jobs). Yields
    whether this process is watched."""
    if "thread" not in _watch and (launcher := _launcher()) is not None:
        _watch["thread"] = threading.Thread(target=_watch_thread, args=(launcher, poll, grace),
                                            name="gansweep-launcher-watch", daemon=True)
        _watch["thread"].start()
    _watch["job"] = True
    try:
        yield "thread" in _watch
    finally:
        _watch["job"] = False


def orphaned() -> bool:
    """Whether this process's launcher is gone (``watch_launcher``)."""
    return bool(_watch.get("orphaned"))
