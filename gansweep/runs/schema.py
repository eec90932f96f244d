"""The schemas of a run's driver (conf/trainer/, conf/logger/): budget, checkpoints, device,
precision, progress and the loggers. Torch-free, like every schema: the device check
imports torch when it runs, not when a config is composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from gansweep.checks import Checked, Choice, at_least_one, finite, require


class FakeMode(Choice):
    eval = "eval"  # G.predict: BatchNorm moving averages (the seed)
    train = "train"  # batch statistics, moving averages updated


class Precision(Choice):
    fp32 = "fp32"  # IEEE float32 everywhere (the seed's arithmetic)
    bf16 = "bf16"  # bfloat16 autocast of the forward passes; float32 master weights


class Resume(Choice):
    auto = "auto"  # continue from checkpoints/last.pt in the output dir; skip finished runs
    never = "never"  # always start from scratch


class Progress(Choice):
    auto = "auto"  # a bar on a terminal, plain lines otherwise
    bar = "bar"
    lines = "lines"
    off = "off"


@dataclass
class TrainerConfig(Checked):
    name: str = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    max_batches_per_epoch: Optional[int] = MISSING
    sample_every: int = MISSING
    checkpoint_every: Optional[int] = MISSING  # batches; null = none by count
    checkpoint_minutes: Optional[float] = MISSING  # wall clock; null = none by time
    resume: Resume = MISSING
    extend_from: Optional[str] = MISSING
    device: str = MISSING  # auto | cpu | cuda | cuda:N (checked below)
    tf32: bool = MISSING  # TF32 matmuls/convolutions on CUDA (faster, not float32)
    deterministic: bool = MISSING  # deterministic CUDA kernels (slower); else cuDNN autotunes
    fake_mode: FakeMode = MISSING
    log_every: int = MISSING
    progress: Progress = MISSING
    threads: Optional[int] = MISSING  # torch intra-op threads; null = torch's default
    precision: Precision = MISSING  # bf16: autocast forwards (gansweep.device.train_autocast)

    def check(self) -> None:
        at_least_one(self, "epochs", "batch_size", "sample_every", "log_every")
        at_least_one(self, "checkpoint_every", null="not by batch count")
        minutes = self.checkpoint_minutes
        require(minutes is None or (finite(minutes) and minutes > 0), "checkpoint_minutes",
                minutes, "must be a number > 0 or null (not by time)")
        at_least_one(self, "max_batches_per_epoch", null="all batches")
        at_least_one(self, "threads", null="torch's default")
        # torch (is CUDA there?): at check time only, so that composing a config imports none
        from gansweep.device import check_device_name

        problem = check_device_name(str(self.device))
        require(problem is None, "device", str(self.device), problem)


# The logger group maps each logger's name to its config (conf/logger/*.yaml), so several
# compose: logger=[csv,tensorboard]. These schemas type the shipped ones: a misspelt key or
# a wrong type fails at composition. A logger of your own needs no schema, only _target_.
@dataclass
class TensorBoardLoggerConfig:
    _target_: str = MISSING
    flush_secs: int = MISSING
    subdir: str = MISSING


@dataclass
class CsvLoggerConfig:
    _target_: str = MISSING
    filename: str = MISSING


@dataclass
class MlflowLoggerConfig:
    _target_: str = MISSING
    tracking_uri: str = MISSING
    artifact_location: str = MISSING
    experiment: Optional[str] = MISSING
    run_name: Optional[str] = MISSING
    flush_secs: float = MISSING


LOGGER_SCHEMAS = {"tensorboard": TensorBoardLoggerConfig, "csv": CsvLoggerConfig,
                  "mlflow": MlflowLoggerConfig}


SCHEMAS = (("trainer", "trainer", TrainerConfig),)
