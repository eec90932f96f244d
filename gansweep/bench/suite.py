"""``gansweep-bench``'s runs: the measurements of ``gansweep.bench.measure`` in interleaved
rounds (one step of each (gan_type, impl) pair per round, so a machine whose load changes
slows all of them alike), and the JSON-ready report they make."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gansweep.bench import measure
from gansweep.bench.measure import PeerStepper, profile_ops
from gansweep.device import memory_report, sync


def base_overrides(args) -> list[str]:
    """The Hydra overrides every timed run shares (data, device, batch, threads, -o ...)."""
    base = [f"dataset.root={args.data_root}", "trainer.progress=off",
            f"trainer.device={args.device}", f"trainer.batch_size={args.batch_size}"]
    if args.limit:
        base.append(f"dataset.limit={args.limit}")
    if args.threads:
        base.append(f"trainer.threads={args.threads}")
    return base + list(args.overrides)


def timed_rounds(steppers: dict, device, steps: int, warmup: int) -> tuple[dict, dict]:
    """Wall and process-CPU seconds of ``steps`` steps per pair after ``warmup`` untimed
    ones, one step of each pair per round; every interval ends with a device sync."""
    for _ in range(warmup):
        for stepper in steppers.values():
            stepper.step()
    times = {pair: [] for pair in steppers}
    cpu_times = {pair: [] for pair in steppers}  # process CPU time: less load-sensitive
    for _ in range(steps):
        for pair, stepper in steppers.items():
            sync(device)
            c0, t0 = time.process_time(), time.perf_counter()
            stepper.step()
            sync(device)
            times[pair].append(time.perf_counter() - t0)
            cpu_times[pair].append(time.process_time() - c0)
    return times, cpu_times


def pair_result(stepper, times: list[float], cpu_times: list[float], peak: float, args) -> dict:
    """One pair's row: timings, and for our own steps FLOPs, % of peak and loop costs."""
    median = statistics.median(times)
    row = {"median_s": median, "min_s": min(times), "max_s": max(times),
           "cpu_median_s": statistics.median(cpu_times), "times_s": times}
    if isinstance(stepper, PeerStepper):
        return {**row, "peer": True, "framework": stepper.framework}
    flops = stepper.flops()
    costs = stepper.loop_costs(median)
    row.update(gflop_per_step=flops / 1e9, gflops=flops / 1e9 / median,
               fraction_of_peak=flops / 1e9 / median / peak, loop_costs=costs,
               loop_s_per_step=median + costs["overhead_s_per_step"])
    if args.profile:
        row["profile"] = profile_ops(stepper, args.profile, args.profile_top)
    return row


def compare(results: dict, gan_types, impls, peer: str | None) -> None:
    """Speed-ups in place: fast vs reference (and the reference's work at the fast time),
    and each of our impls vs the peer's step."""
    for gan in gan_types:
        ref, fast = results.get(f"{gan}/reference"), results.get(f"{gan}/fast")
        if ref and fast:
            fast["speedup_vs_reference"] = ref["median_s"] / fast["median_s"]
            fast["reference_equivalent_gflops"] = ref["gflop_per_step"] / fast["median_s"]
        theirs = results.get(f"{gan}/{peer}") if peer else None
        if theirs:
            for impl in impls:
                if ours := results.get(f"{gan}/{impl}"):
                    ours["speedup_vs_peer"] = theirs["median_s"] / ours["median_s"]


def bench(args) -> dict:
    """Every measurement the arguments ask for, as one JSON-ready report."""
    base = base_overrides(args)
    pairs = [(gan, impl) for gan in args.gan_types for impl in args.impls]
    rss = {}
    if args.rss:  # first, while this process is small: a child's ru_maxrss starts from ours
        probe_gan = "coulomb" if "coulomb" in args.gan_types else args.gan_types[0]
        rss = {impl: measure.rss_probe([*base, f"gan_type={probe_gan}", f"model.impl={impl}"],
                                       args.rss_steps) for impl in args.impls}
    with tempfile.TemporaryDirectory() as tmp:
        steppers = {(gan, impl): measure.Stepper([*base, f"gan_type={gan}", f"model.impl={impl}"],
                                                 str(Path(tmp) / f"{gan}_{impl}"))
                    for gan, impl in pairs}
        first_run = next(iter(steppers.values())).run
        device, real_images = first_run.device, first_run.data[:64]
        if args.peer:  # the seed's step in another framework, in the same rounds
            for gan in args.gan_types:
                cfg = steppers[gan, args.impls[0]].cfg
                steppers[gan, args.peer] = measure.PeerStepper(args.peer, cfg, first_run)
        precision = str(first_run.cfg.trainer.precision)  # one for all (-o)
        peaks = measure.gemm_peaks(device, args.peak_size, precision)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times, cpu_times = timed_rounds(steppers, device, args.steps, args.warmup)
        memory = memory_report(device)  # the training steps' peak, before the matmul's
        for name, value in measure.gemm_peaks(device, args.peak_size, precision).items():
            peaks[name] = max(peaks[name], value)  # the best of before and after the rounds
        peak = max(peaks.values())
        results = {f"{gan}/{impl}": {"gan_type": gan, "impl": impl,
                                     **pair_result(stepper, times[gan, impl],
                                                   cpu_times[gan, impl], peak, args)}
                   for (gan, impl), stepper in steppers.items()}
        bench_rss = measure.peak_rss_mb()
    compare(results, args.gan_types, args.impls, args.peer)
    report = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": str(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
        "platform": platform.platform(), "batch_size": args.batch_size,
        "cpu_time_note": "cpu_median_s is process CPU time of all threads (spin-waits count)",
        "steps": args.steps, "warmup": args.warmup, "limit": args.limit,
        "overrides": list(args.overrides),
        "matmul_peak_gflops": peak, "matmul_peaks_gflops": peaks, "peer": args.peer,
        "precision": precision, "results": results, **memory,
        "bench_process_peak_rss_mb": round(bench_rss, 1),
    }
    if rss:
        report["full_mnist_rss"] = rss
    if args.fid:
        report["fid_features"] = measure.fid_throughput(device, real_images)
    if args.metrics:
        try:
            report["metric_cost"] = measure.metric_cost(device, args.data_root,
                                                        args.metric_samples)
        except Exception as error:  # noqa: BLE001 - an optional part of the bench
            report["metric_cost"] = {"status": "skipped",
                                     "reason": f"{type(error).__name__}: {error}"}
    return report
