"""Test helpers for tests/test_reproducibility.py.

``PidProbe``: a Hydra callback that writes the process id running each job to
``<job dir>/pid.txt``, so a test can see which jobs shared a joblib worker.

As a script, ``python tests/jobprobe.py POINT [overrides...]`` runs ``gansweep-train`` and
kills its own process with SIGKILL at POINT, the way a crash or an OOM kill would (no
handler runs, nothing is flushed beyond what was written):

* ``fid:N``   right after the N-th epoch-end FID row is written to metrics.jsonl
* ``step:N``  right after the loss row of step N is written
* ``final``   after the final checkpoint, before the final samples and evaluation
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from hydra.experimental.callback import Callback


class PidProbe(Callback):
    def on_job_start(self, config, **kwargs) -> None:
        Path(config.hydra.runtime.output_dir, "pid.txt").write_text(str(os.getpid()))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    """Patch the trainer so that this process kills itself at ``point``."""
    from gansweep import artifacts
    from gansweep.runs import trainer

    kind, _, number = point.partition(":")
    if kind == "final":
        trainer.Run.final_samples = lambda self: _die()
        return
    if kind not in ("fid", "step"):
        raise SystemExit(f"unknown kill point {point!r}: use fid:N, step:N or final")
    target, fid_rows = int(number), []
    write = artifacts.MetricsLog.write

    def write_then_maybe_die(self, row: dict) -> None:
        write(self, row)
        if kind == "fid" and any(k.startswith("fid_") for k in row):
            fid_rows.append(row)
            if len(fid_rows) == target:
                _die()
        elif kind == "step" and "d_loss" in row and row["step"] == target:
            _die()

    artifacts.MetricsLog.write = write_then_maybe_die


if __name__ == "__main__":
    arm(sys.argv.pop(1))
    from gansweep import train

    train.main()
