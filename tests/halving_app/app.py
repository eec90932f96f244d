"""A toy Hydra app for the halving sweeper's tests: a deterministic objective of x, seed and
the budget, each result cached by its overrides (as gansweep-train skips a finished run), and
a crash on request (a job killed mid-rung)."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import gansweep.conf  # noqa: F401 - registers hydra/sweeper=halving


@hydra.main(version_base="1.3", config_path=".", config_name="toy")
def main(cfg: DictConfig) -> float:
    key = f"x={cfg.x} seed={cfg.seed} epochs={cfg.trainer.epochs}"
    done = Path(cfg.cache) / key.replace(" ", "_")
    if done.exists():
        return float(done.read_text())
    with open(cfg.calls, "a") as calls:
        calls.write(key + "\n")
    if cfg.crash_at == key:
        os._exit(3)  # killed: nothing recorded for this job
    # a low budget's ranking is noisy (the seed term), the full budget's is (x - 2)^2
    value = (cfg.x - 2) ** 2 + (cfg.seed - 1) * 4.0 / cfg.trainer.epochs
    Path(cfg.cache).mkdir(parents=True, exist_ok=True)
    done.write_text(repr(value))
    return value


if __name__ == "__main__":
    main()
