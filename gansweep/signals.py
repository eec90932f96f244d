"""SIGTERM (cluster pre-emption, kill) and SIGINT (Ctrl-C) during training: the loop stops
at the next batch boundary with a checkpoint, and raises ``Interrupted``."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


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
