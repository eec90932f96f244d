"""Training progress: a tqdm bar on a terminal, about ten log lines per epoch otherwise
(a multirun's log, a batch job's output)."""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

log = logging.getLogger("gansweep.trainer")


class Progress:
    """A tqdm bar on a terminal; plain log lines (about ten per epoch) otherwise."""

    def __init__(self, mode: str, epochs: int, batches: int):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.epochs, self.batches = mode, epochs, batches
        self.every = max(1, batches // 10)
        self.bar: tqdm | None = None

    def update(self, c, d_loss: float, g_loss: float, step_s: float) -> None:
        """After batch ``c.batch`` of epoch ``c.epoch`` (a checkpoint.Counters)."""
        done = c.batch + 1
        if self.mode == "bar":
            if self.bar is None or done <= self.bar.n:
                self.close()
                self.bar = tqdm(total=self.batches, desc=f"epoch {c.epoch + 1}/{self.epochs}",
                                unit="batch", dynamic_ncols=True)
            self.bar.set_postfix_str(f"d_loss {d_loss:.4f} g_loss {g_loss:.4f}", refresh=False)
            self.bar.update(done - self.bar.n)
        elif self.mode == "lines" and (done % self.every == 0 or done == self.batches):
            log.info("epoch %d/%d batch %d/%d d_loss %.4f g_loss %.4f %.2fs/step", c.epoch + 1,
                     self.epochs, done, self.batches, d_loss, g_loss, step_s)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
