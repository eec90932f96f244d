"""Where a run computes and at what precision: device names, GPU placement of parallel jobs,
numeric backend flags (TF32, determinism, cuDNN autotuning) and synchronised timing.

Everything here is a no-op or a plain flag write on a CPU-only build, so it is testable
without a GPU: the CUDA branches are chosen by ``device.type``, never by trying CUDA.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time

import torch

log = logging.getLogger(__name__)

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_ALLOWED = "auto, cpu, cuda or cuda:N (N = a visible GPU's index)"
# cuBLAS needs a fixed workspace to be deterministic; read when its first handle is made.
CUBLAS_WORKSPACE = ":4096:8"


def check_device_name(name: str) -> str | None:
    """None if ``name`` is a usable ``trainer.device`` here, else what is wrong with it."""
    if not DEVICE_PATTERN.match(name):
        return f"must be {DEVICE_ALLOWED}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine; use trainer.device=cpu or auto"
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            return (f"this machine shows {count} GPU(s) (cuda:0..cuda:{count - 1}); "
                    "check CUDA_VISIBLE_DEVICES or pick a smaller index")
    return None


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda (the current device) where CUDA is available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def job_device(name: str, job_num: int | None) -> str:
    """The device of job ``job_num`` when a launcher runs jobs side by side on one machine
    (Hydra's joblib launcher): ``auto`` and ``cuda`` go round-robin over the visible GPUs
    (``cuda:<job_num % device_count>``) instead of all landing on cuda:0. An explicit
    ``cuda:N`` or ``cpu``, or a machine without CUDA, keeps ``name``."""
    if name not in ("auto", "cuda") or job_num is None or not torch.cuda.is_available():
        return name
    return f"cuda:{job_num % max(1, torch.cuda.device_count())}"


def launcher_gpus(launcher) -> int:
    """GPUs a Hydra submitit launcher config asks for per node (0 if none or not submitit)."""
    if "submitit" not in str((launcher or {}).get("_target_", "")):
        return 0
    return int(launcher.get("gpus_per_node") or launcher.get("gpus_per_task") or 0)


def warn_if_gpu_hidden(name: str, launcher) -> str | None:
    """A warning (also logged) when ``device=auto`` trains on CPU although the launcher
    asked the cluster for GPUs: the job landed where CUDA is not visible."""
    gpus = launcher_gpus(launcher)
    if name != "auto" or gpus == 0 or torch.cuda.is_available():
        return None
    message = (f"hydra.launcher asked for {gpus} GPU(s) per node but CUDA is not visible in "
               "this job, so trainer.device=auto trains on CPU. Fix: check the partition and "
               "CUDA_VISIBLE_DEVICES, or set trainer.device=cuda to fail instead of falling back")
    log.warning(message)
    return message


def select(device: torch.device) -> None:
    """Make a CUDA device the current one (``cuda:N``: helpers that say just "cuda" follow
    it) and start its peak-memory count; nothing on CPU. ``cuda`` without an index is the
    current device already (``torch.cuda.set_device`` refuses it)."""
    if device.type != "cuda":
        return
    if device.index is not None:
        torch.cuda.set_device(device)
    torch.cuda.reset_peak_memory_stats(device)


def configure_backends(device: torch.device, tf32: bool = False,
                       deterministic: bool = False) -> None:
    """Set the process-wide numeric flags a run depends on, every time (a second run in the
    same process must not inherit the first's).

    TF32: off unless asked for, so float32 on a GPU is IEEE float32 as on the seed's CPU
    (cuDNN convolutions default to TF32 on Ampere and newer). Deterministic: cuDNN's
    deterministic algorithms and ``torch.use_deterministic_algorithms`` (cuBLAS workspace
    fixed before its first use); otherwise cuDNN may autotune (``benchmark``) on CUDA.
    """
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if deterministic:  # read when cuBLAS makes its first handle: too late in a process that
        # already ran a non-deterministic CUDA job (export it before such a sequential sweep)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic


def configure_process(cfg) -> torch.device:
    """The process-wide settings runs depend on, set once per process by whoever drives the
    runs (``gansweep.runs.trainer.run``, the packed launcher), never by a run: torch's thread
    count (when ``trainer.threads`` names one), TF32 and deterministic kernels, the current
    CUDA device. ``cfg``: a checked run config. Returns the device."""
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    device = resolve_device(str(cfg.trainer.device))
    configure_backends(device, cfg.trainer.tf32, cfg.trainer.deterministic)
    select(device)
    return device


def precision(device: torch.device | str) -> str:
    """The float32 arithmetic a device runs right now: ``tf32`` on CUDA when TF32 is allowed
    for matmuls or convolutions, else ``float32``. Part of FID cache keys and summaries."""
    if torch.device(device).type == "cuda" and (
            torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32):
        return "tf32"
    return "float32"


# trainer.precision: the arithmetic of the training forward passes (master weights, optimiser
# state, losses and the Coulomb potential stay float32/float64 in both).
TRAIN_PRECISIONS = ("fp32", "bf16")


def check_train_precision(name: str) -> str | None:
    """None if ``name`` is a usable ``trainer.precision``, else what is wrong with it."""
    if name not in TRAIN_PRECISIONS:
        return f"trainer.precision={name!r}: choose one of {', '.join(TRAIN_PRECISIONS)}"
    return None


def train_autocast(device: torch.device, name: str = "fp32"):
    """The context the D and G forward passes run in for ``trainer.precision=name``.

    ``fp32``: none (IEEE float32, the default). ``bf16``: ``torch.autocast`` to bfloat16 on
    the run's device type: convolutions and matrix products take bfloat16 inputs with float32
    accumulation, the parameters stay float32 (master weights; gradients and Adam state are
    float32), BatchNorm statistics are taken in float32 (``KerasBatchNorm``), and whatever the
    caller computes outside the context (losses, the Coulomb potential in float64) is as in
    fp32. Callers hand the network outputs to the loss through ``full_precision``.
    """
    if (problem := check_train_precision(name)) is not None:
        raise ValueError(problem)
    if name == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """A bfloat16/float16 network output as float32 for the loss; any other tensor as is
    (float32 unchanged, and the float64 of the equivalence tests stays float64)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """Wall time of training steps, read only at points where the loop synchronises anyway
    (logging, checkpoints): on a GPU a read without a sync would time the kernel launches,
    not the work, and a sync per step would stall the queue."""

    def __init__(self, device: torch.device):
        self.device = device
        self.restart()

    def restart(self) -> None:
        sync(self.device)
        self.t0, self.steps = time.perf_counter(), 0

    def tick(self) -> None:
        self.steps += 1

    def lap(self) -> tuple[float, int]:
        """(seconds, steps) since the last lap or restart."""
        sync(self.device)
        now = time.perf_counter()
        elapsed, steps = now - self.t0, self.steps
        self.t0, self.steps = now, 0
        return elapsed, steps


def memory_report(device: torch.device) -> dict:
    """Peak CUDA memory allocated and reserved (MB) since the last reset; {} on CPU."""
    if device.type != "cuda":
        return {}
    return {"max_memory_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
            "max_memory_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1)}


def isolated_rng(device: torch.device):
    """A context in which random draws leave the training streams untouched.

    Evaluation, pictures and model loading run inside it, so a run's Dropout masks and
    initialisations do not depend on whether (or how often) an FID was computed or an
    extractor was built earlier in the same process (a multirun, a joblib worker)."""
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)
