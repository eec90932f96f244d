"""What ``gansweep-bench`` measures, each on its own: one training step (``Stepper``: the
trainer's own ``train_step`` on a ``Run`` built from the composed config) and the seed's step
in Keras (``PeerStepper``), the loop's logging and checkpoint costs, FLOPs per step, the GEMM
peak in the steps' arithmetic, FID feature throughput, the cost of each evaluation metric,
peak resident memory of a full-MNIST run (a child process) and a per-op profile.
``gansweep.bench.cli`` runs them in interleaved rounds; ``gansweep.bench.report`` prints them.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose as hydra_compose, initialize_config_module
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from gansweep import artifacts
from gansweep.bench import keras_peer
from gansweep.data.mnist import load_mnist
from gansweep.device import sync
from gansweep.fid import frechet, metrics, registry
from gansweep.fid.extractors import load_extractor
from gansweep.gan.step import train_step
from gansweep.runs.trainer import Run, configure_process

# ----------------------------------------------------------------------------- helpers
def compose(overrides: list[str]):
    """The composed ``gansweep-train`` config for ``overrides`` (Hydra compose API)."""
    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class Stepper:
    """One Run and the trainer's step on random real batches."""

    def __init__(self, overrides: list[str], out_dir: str):
        self.cfg = compose(overrides)
        configure_process(self.cfg)  # threads and backends, as gansweep-train sets them
        self.run = Run(self.cfg, out_dir)
        self.batch = int(self.cfg.trainer.batch_size)

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        run = self.run
        index = torch.randint(len(run.data), (self.batch,), generator=run.state.streams.noise,
                              device=run.device)
        d_loss, g_loss, _ = train_step(run.state.parts, run.data[index], run.state.noise,
                                       run.counters.step)
        run.counters.step += 1
        return d_loss, g_loss

    def loop_costs(self, step_s: float, repeats: int = 3) -> dict:
        """Median seconds of the loop's logging read-back (+ metrics row) and of one
        checkpoint write, and their cost per step of ``step_s`` seconds at this config's
        cadences (checkpoints: every checkpoint_every batches, checkpoint_minutes of wall
        clock, or a full-MNIST epoch, whichever comes first)."""
        run, trainer = self.run, self.cfg.trainer
        metrics = artifacts.MetricsLog(run.dirs.metrics)
        log_times, checkpoint_times = [], []
        try:
            for _ in range(repeats):
                losses = self.step()
                sync(run.device)
                t0 = time.perf_counter()
                d_value, g_value = torch.stack(losses).tolist()
                metrics.write({"step": run.counters.step, "d_loss": d_value, "g_loss": g_value})
                log_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run.save_checkpoint()
                checkpoint_times.append(time.perf_counter() - t0)
        finally:
            metrics.close()
        log_s, checkpoint_s = statistics.median(log_times), statistics.median(checkpoint_times)
        every = min(trainer.checkpoint_every or math.inf,
                    trainer.max_batches_per_epoch or 60000 // trainer.batch_size,
                    (trainer.checkpoint_minutes or math.inf) * 60 / step_s)
        return {"log_s": log_s, "checkpoint_s": checkpoint_s,
                "checkpoint_mb": round(run.dirs.checkpoint.stat().st_size / 2**20, 1),
                "log_every": trainer.log_every, "checkpoint_every_batches": round(every, 1),
                "overhead_s_per_step": log_s / trainer.log_every + checkpoint_s / every}

    def flops(self) -> int:
        counter = FlopCounterMode(display=False)
        with counter:
            self.step()
        return counter.get_total_flops()


class PeerStepper:
    """The seed's step in a peer framework (``gansweep.bench.keras_peer``) for a composed
    config, fed
    the same kind of real batches as ``Stepper`` (random MNIST images of the run's data)."""

    def __init__(self, name: str, cfg, run):
        if name != "keras":
            raise ValueError(f"--peer {name}: the one peer is keras")
        if run.device.type != "cpu":
            raise ValueError("--peer keras times TensorFlow on the CPU; use --device cpu")
        self.framework = keras_peer.framework_version()
        self.peer = keras_peer.from_config(cfg, threads=torch.get_num_threads())
        self.data = run.data.cpu().permute(0, 2, 3, 1).contiguous().numpy()  # channels_last
        self.generator = torch.Generator().manual_seed(int(cfg.seed))
        self.batch = int(cfg.trainer.batch_size)

    def step(self) -> tuple[float, float]:
        index = torch.randint(len(self.data), (self.batch,), generator=self.generator).numpy()
        return self.peer.step(self.data[index])


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 7,
                       dtype: torch.dtype = torch.float32) -> float:
    """Median GFLOP/s of an n x n x n matrix product (2 n^3 flops) in ``dtype``."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        sync(device)
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def tensorflow_importable() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def gemm_peaks(device: torch.device, n: int, precision: str = "fp32") -> dict:
    """GFLOP/s of an n^3 matrix product by each GEMM this process can call, in the steps'
    arithmetic. Float32: torch's (MKL on CPU) and, where TensorFlow is importable on a CPU
    run, TensorFlow's (oneDNN), both IEEE float32. ``trainer.precision=bf16``: torch's
    bfloat16 GEMM (oneDNN; AVX512_BF16 where the CPU has it), since a bf16 step is measured
    against what bf16 can do. The best of them is the machine's peak for "% of peak"."""
    if precision == "bf16":
        return {"torch bf16": matmul_peak_gflops(device, n, dtype=torch.bfloat16)}
    peaks = {"torch": matmul_peak_gflops(device, n)}
    if device.type == "cpu" and tensorflow_importable():
        peaks["tensorflow"] = keras_peer.tf_matmul_peak_gflops(n, threads=torch.get_num_threads())
    return peaks


def fid_throughput(device: torch.device, images: torch.Tensor) -> dict:
    """Images/s of each built-in FID feature extractor (``gansweep.fid.registry``) on real
    MNIST, in each precision it has: one of its batches (Inception: 16 images on a CPU, a
    few seconds). An extractor whose weights cannot be had is reported as skipped."""
    results = {}
    for name, entry in registry.BUILTIN.items():
        for precision in entry.precisions:
            label = name if precision == "fp32" else f"{name} {precision}"
            try:
                extractor = load_extractor(name, device, precision=precision)
                rate = extractor.throughput(images.to(device))
                results[label] = {"status": "ok", "images_per_s": round(rate, 2),
                                  "batch": extractor.batch_size}
            except Exception as error:  # noqa: BLE001 - an optional part of the bench
                results[label] = {"status": "skipped",
                                  "reason": f"{type(error).__name__}: {error}"}
    return results


def metric_cost(device: torch.device, data_root: str, n: int = 3000,
                repeats: int = 3) -> dict:
    """Seconds (wall and process CPU, median of ``repeats``) each evaluation metric adds to
    one evaluation of ``n`` LeNet feature vectors: the first n MNIST test images as "fakes"
    against the next n as the reference subset (``gansweep.fid.metrics``); the FID from the same
    features with pytorch-fid's numerics. 'all' is one ``metrics.compute`` of every metric
    (they share the dot products, so it costs less than the sum)."""
    images = load_mnist(data_root, "test", 2 * n).x
    extractor = load_extractor("lenet", device)
    feats = extractor.features(images)
    fake, real = feats[:n], feats[n:]
    mu, sigma = frechet.statistics(real)

    def fid_only():
        m, s = frechet.statistics(fake)
        frechet.frechet_distance(m, s, mu, sigma)

    jobs = {"fid": fid_only}
    others = [m for m in metrics.METRICS[1:] if m not in metrics.CLASS_METRICS]
    for name in others:
        jobs[name] = lambda name=name: metrics.compute([name], real, fake)
    jobs["all"] = lambda: (fid_only(), metrics.compute(others, real, fake))
    results = {}
    for name, job in jobs.items():
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            job()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        results[name] = {"wall_s": round(statistics.median(wall), 3),
                         "cpu_s": round(statistics.median(cpu), 3)}
    return {"samples": n, "feature_dim": int(feats.shape[1]), "per_metric": results,
            "load_average": list(os.getloadavg())}


def rss_probe(overrides: list[str], steps: int) -> dict:
    """Peak RSS of one training run with the FULL MNIST training set, in a child process."""
    command = [sys.executable, "-m", "gansweep.bench.cli", "--rss-probe", "--steps", str(steps),
               "--overrides", *overrides]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"status": "failed", "stderr": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def vm_hwm_mb() -> float | None:
    """This process's own high-water RSS (Linux VmHWM; unlike ru_maxrss not inherited)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def probe_main(overrides: list[str], steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [o for o in overrides if not o.startswith("dataset.limit=")]
        stepper = Stepper([*overrides, "dataset.limit=null"], tmp)
        for _ in range(steps):
            stepper.step()
        sync(stepper.run.device)
        print(json.dumps({"status": "ok", "images": len(stepper.run.data), "steps": steps,
                          "impl": str(stepper.cfg.model.impl),
                          "gan_type": str(stepper.cfg.gan_type.name),
                          "peak_rss_mb": round(peak_rss_mb(), 1),
                          "vm_hwm_mb": vm_hwm_mb()}))


def profile_ops(stepper: Stepper, steps: int, top: int) -> dict:
    """Where one step's time goes: ``torch.profiler`` over ``steps`` steps, ops grouped by
    name and input shapes (so G's and D's convolutions are apart), sorted by self time.
    Rows give milliseconds and calls per step and the share of the profiled self time
    (the profiler's own overhead included, a few percent)."""
    activities = [ProfilerActivity.CPU]
    if stepper.run.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            stepper.step()
        sync(stepper.run.device)
    events = prof.key_averages(group_by_input_shape=True)
    cuda = stepper.run.device.type == "cuda"

    def self_us(event) -> float:
        return event.self_device_time_total if cuda else event.self_cpu_time_total

    events = sorted(events, key=self_us, reverse=True)
    total = sum(self_us(e) for e in events)
    rows = [{"op": e.key, "shapes": str(e.input_shapes)[:70],
             "ms_per_step": round(self_us(e) / steps / 1e3, 2),
             "calls_per_step": round(e.count / steps, 2),
             "share": round(self_us(e) / total, 4)} for e in events[:top]]
    return {"steps": steps, "ms_per_step": round(total / steps / 1e3, 1),
            "clock": "device" if cuda else "cpu", "ops": rows}
