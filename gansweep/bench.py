"""``gansweep-bench``: how fast is one training step, and how close to the machine's peak?

For every (gan_type, model.impl) pair it builds a ``gansweep.trainer.Run`` from the composed
Hydra config (output under a temp dir) and times the trainer's own step, as the training
loop runs it: ``gansweep.step.train_step`` (fakes from G in inference mode, the D step on
real + fake, the G step through the frozen D). Steps of the different pairs are interleaved (one step of
each pair per round), so a machine whose load changes during the run slows all of them
alike; the table reports medians after warm-up.

The loop's other costs are timed apart and added as an estimate per step: the logging
read-back (both losses in one transfer, plus the metrics row) every ``trainer.log_every``
batches and a checkpoint write every ``trainer.checkpoint_every`` batches (else once per
epoch). On CUDA every timed interval ends with a synchronisation, and the peak CUDA memory
(``torch.cuda.max_memory_allocated``) is reported.

Also reported: GFLOP per step (``torch.utils.flop_counter.FlopCounterMode`` over one step),
achieved GFLOP/s and its ratio to a matrix-product peak measured in the same run, in the
steps' arithmetic (float32: the best GEMM in the process, torch's and, where TensorFlow is
importable, TensorFlow's; ``-o trainer.precision=bf16``: torch's bfloat16 GEMM),
peak resident memory of one full-MNIST training run (a child process, so the figure is
that run's alone), and FID feature throughput when a ``gansweep.fid`` module is installed.

    gansweep-bench                                  # both gan_types x both impls
    gansweep-bench --steps 30 --warmup 5 --json outputs/bench/mine.json
    gansweep-bench --impls fast --gan-types coulomb -o trainer.threads=2
    gansweep-bench --peer keras --impls fast --threads 2   # the seed's step in Keras 3 beside ours
    gansweep-bench --impls fast --profile 10        # + per-op table: where a step's time goes

``--peer keras`` (``pip install 'gansweep[keras-peer]'``) adds the seed's step rebuilt in Keras 3
on TensorFlow's CPU build (``gansweep.peers.keras``) to the same interleaved rounds and prints
how many times faster each of our impls is.

Longer than the other modules because it is one command with several measurements (step
times, GEMM peak, FID throughput, metric cost, memory, loop costs, per-op profile) and their
table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gansweep.device import check_device_name, memory_report, sync

GAN_TYPES = ("standard", "coulomb")
IMPLS = ("reference", "fast")


# ----------------------------------------------------------------------------- helpers
def compose(overrides: list[str]):
    """The composed ``gansweep-train`` config for ``overrides`` (Hydra compose API)."""
    from hydra import compose as hydra_compose, initialize_config_module

    from gansweep import schema  # noqa: F401 - registers the schemas

    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss: KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class Stepper:
    """One Run and the trainer's step on random real batches."""

    def __init__(self, overrides: list[str], out_dir: str):
        from gansweep.trainer import Run

        self.cfg = compose(overrides)
        self.run = Run(self.cfg, out_dir)
        self.batch = int(self.cfg.trainer.batch_size)

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        from gansweep.step import train_step

        run = self.run
        index = torch.randint(len(run.data), (self.batch,), generator=run.generator,
                              device=run.device)
        d_loss, g_loss, _ = train_step(run.parts, run.data[index], run.noise, run.counters.step)
        run.counters.step += 1
        return d_loss, g_loss

    def loop_costs(self, step_s: float, repeats: int = 3) -> dict:
        """Median seconds of the loop's logging read-back (+ metrics row) and of one
        checkpoint write, and their cost per step of ``step_s`` seconds at this config's
        cadences (checkpoints: every checkpoint_every batches, checkpoint_minutes of wall
        clock, or a full-MNIST epoch, whichever comes first)."""
        from gansweep import artifacts, checkpoint

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
                checkpoint.save(run)
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
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.step()
        return counter.get_total_flops()


PEERS = ("keras",)


class PeerStepper:
    """The seed's step in a peer framework (``gansweep.peers``) for a composed config, fed
    the same kind of real batches as ``Stepper`` (random MNIST images of the run's data)."""

    def __init__(self, name: str, cfg, run):
        if name != "keras":
            raise ValueError(f"--peer {name}: choose one of {PEERS}")
        if run.device.type != "cpu":
            raise ValueError("--peer keras times TensorFlow on the CPU; use --device cpu")
        from gansweep.peers import keras as peer

        self.framework = peer.framework_version()
        self.peer = peer.from_config(cfg, threads=torch.get_num_threads())
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
    import importlib.util

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
        from gansweep.peers.keras import tf_matmul_peak_gflops

        peaks["tensorflow"] = tf_matmul_peak_gflops(n, threads=torch.get_num_threads())
    return peaks


def fid_throughput(device: torch.device, images: torch.Tensor) -> dict:
    """Images/s of each FID feature extractor (``gansweep.fid.load_extractor``) on real MNIST.

    Inception processes one of its batches (16 images on a CPU: a few seconds), in
    float32 and as its bf16 variant (``fid.precision=bf16``); LeNet one of its own. An
    extractor whose weights cannot be had is reported as skipped.
    """
    from gansweep.fid import EXTRACTORS, load_extractor
    from gansweep.fid.extractors import BF16_EXTRACTORS

    results = {}
    for name in EXTRACTORS:
        for precision in ("fp32", "bf16") if name in BF16_EXTRACTORS else ("fp32",):
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
    against the next n as the reference subset (``gansweep.metrics``); the FID from the same
    features with pytorch-fid's numerics. 'all' is one ``metrics.compute`` of every metric
    (they share the dot products, so it costs less than the sum)."""
    import numpy as np

    from gansweep import fid
    from gansweep.fid import metrics
    from gansweep.data import load_mnist

    images = load_mnist(data_root, "test", 2 * n).x
    extractor = fid.load_extractor("lenet", device)
    feats = extractor.features(images)
    fake, real = feats[:n], feats[n:]
    mu, sigma = fid.statistics(real)

    def fid_only():
        m, s = fid.statistics(fake)
        fid.frechet_distance(m, s, mu, sigma)

    jobs = {"fid": fid_only}
    for name in metrics.METRICS[1:]:
        jobs[name] = lambda name=name: metrics.compute([name], real, fake)
    jobs["all"] = lambda: (fid_only(), metrics.compute(list(metrics.METRICS[1:]), real, fake))
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
    command = [sys.executable, "-m", "gansweep.bench", "--rss-probe", "--steps", str(steps),
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


def _probe_main(overrides: list[str], steps: int) -> None:
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
    from torch.profiler import ProfilerActivity, profile

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


# ----------------------------------------------------------------------------- bench
def bench(args) -> dict:
    base = [f"dataset.root={args.data_root}", "trainer.progress=off",
            f"trainer.device={args.device}", f"trainer.batch_size={args.batch_size}"]
    if args.limit:
        base.append(f"dataset.limit={args.limit}")
    if args.threads:
        base.append(f"trainer.threads={args.threads}")
    base += list(args.overrides)
    pairs = [(gan, impl) for gan in args.gan_types for impl in args.impls]
    results: dict[str, dict] = {}
    rss = {}
    if args.rss:  # first, while this process is small: a child's ru_maxrss starts from ours
        probe_gan = "coulomb" if "coulomb" in args.gan_types else args.gan_types[0]
        rss = {impl: rss_probe([*base, f"gan_type={probe_gan}", f"model.impl={impl}"],
                               args.rss_steps) for impl in args.impls}
    with tempfile.TemporaryDirectory() as tmp:
        steppers = {}
        for gan, impl in pairs:
            out = Path(tmp) / f"{gan}_{impl}"
            steppers[gan, impl] = Stepper([*base, f"gan_type={gan}", f"model.impl={impl}"], str(out))
        first_run = next(iter(steppers.values())).run
        device, real_images = first_run.device, first_run.data[:64]
        if args.peer:  # the seed's step in another framework, in the same rounds
            for gan in args.gan_types:
                cfg = next(s.cfg for (g, _), s in steppers.items() if g == gan)
                pairs.append((gan, args.peer))
                steppers[gan, args.peer] = PeerStepper(args.peer, cfg, first_run)
        precision = str(next(iter(steppers.values())).cfg.trainer.precision)  # one for all (-o)
        peaks = gemm_peaks(device, args.peak_size, precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.warmup):
            for stepper in steppers.values():
                stepper.step()
        times = {pair: [] for pair in pairs}
        cpu_times = {pair: [] for pair in pairs}  # process CPU time: less load-sensitive
        for _ in range(args.steps):
            for pair, stepper in steppers.items():
                sync(device)
                c0, t0 = time.process_time(), time.perf_counter()
                stepper.step()
                sync(device)
                times[pair].append(time.perf_counter() - t0)
                cpu_times[pair].append(time.process_time() - c0)
        memory = memory_report(device)  # the training steps' peak, before the matmul's
        for name, value in gemm_peaks(device, args.peak_size, precision).items():
            peaks[name] = max(peaks[name], value)
        peak = max(peaks.values())
        for pair, stepper in steppers.items():
            median = statistics.median(times[pair])
            if isinstance(stepper, PeerStepper):
                results[f"{pair[0]}/{pair[1]}"] = {
                    "gan_type": pair[0], "impl": pair[1], "peer": True,
                    "median_s": median, "min_s": min(times[pair]), "max_s": max(times[pair]),
                    "cpu_median_s": statistics.median(cpu_times[pair]),
                    "times_s": times[pair], "framework": stepper.framework}
                continue
            flops = stepper.flops()
            results[f"{pair[0]}/{pair[1]}"] = {
                "gan_type": pair[0], "impl": pair[1],
                "median_s": median, "min_s": min(times[pair]), "max_s": max(times[pair]),
                "cpu_median_s": statistics.median(cpu_times[pair]),
                "gflop_per_step": flops / 1e9, "gflops": flops / 1e9 / median,
                "fraction_of_peak": flops / 1e9 / median / peak,
                "times_s": times[pair]}
            costs = stepper.loop_costs(median)
            results[f"{pair[0]}/{pair[1]}"].update(
                loop_costs=costs, loop_s_per_step=median + costs["overhead_s_per_step"])
            if args.profile:
                results[f"{pair[0]}/{pair[1]}"]["profile"] = profile_ops(
                    stepper, args.profile, args.profile_top)
        bench_rss = peak_rss_mb()
    for gan in args.gan_types:  # reference-equivalent rate: the reference's work / fast time
        ref, fast = results.get(f"{gan}/reference"), results.get(f"{gan}/fast")
        if ref and fast:
            fast["speedup_vs_reference"] = ref["median_s"] / fast["median_s"]
            fast["reference_equivalent_gflops"] = ref["gflop_per_step"] / fast["median_s"]
        peer = results.get(f"{gan}/{args.peer}") if args.peer else None
        if peer:  # how many times faster than the peer's step, per impl of ours
            for impl in args.impls:
                ours = results.get(f"{gan}/{impl}")
                if ours:
                    ours["speedup_vs_peer"] = peer["median_s"] / ours["median_s"]
    report = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": str(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
        "platform": platform.platform(), "batch_size": args.batch_size,
        "cpu_time_note": "cpu_median_s is process CPU time of all threads (spin-waits count)",
        "steps": args.steps, "warmup": args.warmup, "limit": args.limit,
        "overrides": list(args.overrides),
        "matmul_peak_gflops": peak, "matmul_peaks_gflops": peaks, "peer": args.peer,
        "precision": precision,
        "results": results, **memory,
        "bench_process_peak_rss_mb": round(bench_rss, 1),
    }
    if rss:
        report["full_mnist_rss"] = rss
    if args.fid:
        report["fid_features"] = fid_throughput(device, real_images)
    if args.metrics:
        try:
            report["metric_cost"] = metric_cost(device, args.data_root, args.metric_samples)
        except Exception as error:  # noqa: BLE001 - an optional part of the bench
            report["metric_cost"] = {"status": "skipped",
                                     "reason": f"{type(error).__name__}: {error}"}
    return report


def format_table(report: dict) -> str:
    lines = [f"device {report['device']}, torch {report['torch']}, {report['threads']} threads, "
             f"load average {report['load_average'][0]:.2f}, batch {report['batch_size']}, "
             f"{report['steps']} timed steps after {report['warmup']} warm-up (interleaved)",
             f"{'bfloat16' if report.get('precision') == 'bf16' else 'float32'} matmul peak "
             "(best GEMM in this process, the steps' arithmetic): "
             f"{report['matmul_peak_gflops']:.1f} GFLOP/s ("
             + ", ".join(f"{name} {value:.1f}" for name, value in
                         report.get("matmul_peaks_gflops", {}).items()) + ")", "",
             "| gan_type | impl | median s/step | min s | CPU s/step | GFLOP/step | GFLOP/s "
             "| % of peak | speed-up | loop s/step |"
             + (f" vs {report['peer']} |" if report.get("peer") else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if report.get("peer") else "")]
    for row in report["results"].values():
        if row.get("peer"):
            lines.append(f"| {row['gan_type']} | {row['impl']} ({row['framework']}) "
                         f"| {row['median_s']:.3f} | {row['min_s']:.3f} | {row['cpu_median_s']:.3f} "
                         "| - | - | - | - | - | 1.00x |")
            continue
        speedup = row.get("speedup_vs_reference")
        vs_peer = row.get("speedup_vs_peer")
        lines.append(
            f"| {row['gan_type']} | {row['impl']} | {row['median_s']:.3f} | {row['min_s']:.3f} "
            f"| {row['cpu_median_s']:.3f} "
            f"| {row['gflop_per_step']:.1f} | {row['gflops']:.1f} "
            f"| {100 * row['fraction_of_peak']:.0f}% | "
            f"{f'{speedup:.2f}x' if speedup else '-'} | {row['loop_s_per_step']:.3f} |"
            + (f" {vs_peer:.2f}x |" if vs_peer else (" - |" if report.get("peer") else "")))
    for row in report["results"].values():
        if row.get("speedup_vs_peer"):
            lines.append(f"{row['gan_type']}: {row['impl']} is {row['speedup_vs_peer']:.2f}x the "
                         f"{report['peer']} step's speed (median {row['median_s']:.3f} s vs "
                         f"{report['results'][row['gan_type'] + '/' + report['peer']]['median_s']:.3f} s)")
    costs = next(r for r in report["results"].values() if not r.get("peer"))["loop_costs"]
    lines.append(f"loop s/step = median + logging read-back {costs['log_s'] * 1e3:.2f} ms / "
                 f"{costs['log_every']} batches + checkpoint ({costs['checkpoint_mb']:.0f} MB) "
                 f"{costs['checkpoint_s']:.3f} s / {costs['checkpoint_every_batches']} batches")
    if "max_memory_allocated_mb" in report:
        lines.append(f"peak CUDA memory of the timed steps: {report['max_memory_allocated_mb']:.0f} "
                     f"MB allocated, {report['max_memory_reserved_mb']:.0f} MB reserved")
    for impl, probe in report.get("full_mnist_rss", {}).items():
        if probe.get("status") == "ok":
            lines.append(f"peak RSS, one {probe['gan_type']} run, {impl}, full MNIST "
                         f"({probe['images']} images, {probe['steps']} steps): "
                         f"{probe['peak_rss_mb']:.0f} MB (ru_maxrss; VmHWM {probe['vm_hwm_mb']:.0f} MB)")
        else:
            lines.append(f"peak RSS probe ({impl}) failed: {probe.get('stderr', '')[-300:]}")
    lines.append(f"peak RSS of this bench process (all runs): "
                 f"{report['bench_process_peak_rss_mb']:.0f} MB")
    if "fid_features" in report:
        fid = report["fid_features"]
        for name, result in fid.items():
            lines.append(f"FID features ({name}): " + (
                f"{result['images_per_s']} images/s (batch {result['batch']})"
                if result["status"] == "ok" else f"skipped ({result['reason']})"))
    for name, row in report["results"].items():
        if "profile" not in row:
            continue
        prof = row["profile"]
        lines += ["", f"Per-op profile, {name} ({prof['steps']} steps under torch.profiler, "
                      f"{prof['ms_per_step']} ms/step of {prof['clock']} self time; top "
                      f"{len(prof['ops'])}):",
                  "| op | input shapes | ms/step | calls/step | share |", "|---|---|---|---|---|"]
        lines += [f"| {op['op']} | {op['shapes']} | {op['ms_per_step']:.2f} "
                  f"| {op['calls_per_step']:g} | {100 * op['share']:.1f}% |" for op in prof["ops"]]
    cost = report.get("metric_cost")
    if cost and "per_metric" in cost:
        lines += ["", f"Evaluation cost per metric ({cost['samples']} x {cost['feature_dim']} "
                      "LeNet features, median of 3; 'all' shares the dot products):",
                  "| metric | wall s | CPU s |", "|---|---|---|"]
        lines += [f"| {name} | {r['wall_s']:.3f} | {r['cpu_s']:.3f} |"
                  for name, r in cost["per_metric"].items()]
    elif cost:
        lines.append(f"evaluation cost: skipped ({cost['reason']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gansweep-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gan-types", nargs="+", default=list(GAN_TYPES), choices=GAN_TYPES)
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per pair")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per pair first")
    parser.add_argument("--peer", choices=PEERS, default=None,
                        help="also time the seed's step in this framework, interleaved "
                             "(keras: Keras 3 on TensorFlow CPU, pip install 'gansweep[keras-peer]')")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="trainer.threads")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--limit", type=int, default=4096,
                        help="MNIST images loaded for the timed runs (0: all)")
    parser.add_argument("--peak-size", type=int, default=2048,
                        help="n of the n x n x n float32 matmul that measures the peak")
    parser.add_argument("--no-rss", dest="rss", action="store_false",
                        help="skip the full-MNIST peak-RSS child processes")
    parser.add_argument("--rss-steps", type=int, default=3)
    parser.add_argument("--no-fid", dest="fid", action="store_false")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false",
                        help="skip the per-metric evaluation cost (KID, PRDC, FID)")
    parser.add_argument("--metric-samples", type=int, default=3000,
                        help="samples (and reference features) for the evaluation cost")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="after the timed rounds, profile STEPS steps of each of our pairs "
                             "and print where the time goes, op by op (torch.profiler)")
    parser.add_argument("--profile-top", type=int, default=15, help="ops shown per profile")
    parser.add_argument("--json", default=None,
                        help="where to write the JSON (default outputs/bench/bench_<time>.json)")
    parser.add_argument("-o", "--overrides", nargs="*", default=[],
                        help="extra Hydra overrides for every run, e.g. trainer.threads=2")
    parser.add_argument("--rss-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (problem := check_device_name(args.device)) is not None:
        parser.error(f"--device {args.device}: {problem}")
    if args.rss_probe:
        _probe_main(args.overrides, args.steps)
        return
    if args.peer == "keras" and not tensorflow_importable():
        parser.error("--peer keras needs TensorFlow, which is not installed here; "
                     "install it with: pip install 'gansweep[keras-peer]'")
    report = bench(args)
    path = Path(args.json or f"outputs/bench/bench_{time.strftime('%Y-%m-%d_%H-%M-%S')}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(format_table(report))
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
