"""Optional experiment loggers beside metrics.jsonl (which is always written).

``logger=tensorboard`` writes scalars and sample grids to ``<run dir>/tensorboard`` (needs
the ``tensorboard`` package: ``pip install 'gansweep[tensorboard]'``); ``logger=none`` (the
default) writes nothing more.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch


class NullLogger:
    def log_scalars(self, row: dict[str, Any], step: int) -> None:
        pass

    def log_grid(self, tag: str, grid_uint8, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardLogger(NullLogger):
    def __init__(self, log_dir: Path, flush_secs: int = 30):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch raises ImportError when tensorboard is missing
            raise ImportError(
                "logger=tensorboard needs the tensorboard package. Fix: "
                "pip install 'gansweep[tensorboard]' (or run with logger=none).") from exc
        self.writer = SummaryWriter(str(log_dir), flush_secs=flush_secs)

    def log_scalars(self, row: dict[str, Any], step: int) -> None:
        for key, value in row.items():
            if (key not in ("epoch", "batch", "step") and isinstance(value, (int, float))
                    and math.isfinite(value)):
                self.writer.add_scalar(key, value, step)

    def log_grid(self, tag: str, grid_uint8, step: int) -> None:
        self.writer.add_image(tag, torch.as_tensor(grid_uint8)[None], step, dataformats="CHW")

    def close(self) -> None:
        self.writer.close()


def build_logger(cfg, run_dir: Path) -> NullLogger:
    if cfg is None or str(cfg.name) == "none":
        return NullLogger()
    return TensorBoardLogger(run_dir / "tensorboard", cfg.flush_secs)
