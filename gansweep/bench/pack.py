"""``gansweep-bench --pack N``: N runs trained as one packed model (``gansweep.packed``)
against the same N runs stepped one after another in this process and against one run
alone, in interleaved rounds, with GFLOP/s and the share of the best GEMM measured here;
then the same N runs as N separate processes side by side (``processes``: how a sweep of
one process per job shares the machine), each with 1/N of this process's threads, started
together at a barrier, right after the rounds.

The N runs are the seed presets of each GAN type in turn (``seed_coulomb_1`` ... ``_6``, or
``seed_standard``) with seeds 0, 1, ...: their learning rates, decays and eps differ, as in
a sweep. Each packed convolution implementation asked for (``--pack-conv``) is timed, so
the bench says which one this device wants. Run-steps/s counts one batch of one run as a
run-step: a packed step of N runs is N run-steps. GFLOP/s count the runs' own work (torch's
FLOP counter on the runs stepped separately) for the pack too, which does the same
arithmetic.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import queue
import statistics
import threading
import time

import torch
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from gansweep.bench import measure
from gansweep.bench.report import _markdown
from gansweep.bench.suite import base_overrides
from gansweep.device import configure_backends, resolve_device, sync, train_autocast
from gansweep.gan.models import use_generator
from gansweep.packed.layers import CONV_IMPLS
from gansweep.packed.models import pack
from gansweep.packed.objectives import packed_objective
from gansweep.packed.optim import PackedKerasAdam
from gansweep.packed.step import Pack, packed_train_step
from gansweep.packed.streams import PackedStreams
from gansweep.gan.step import Parts, train_step

PRESETS = {"coulomb": [f"seed_coulomb_{i}" for i in range(1, 7)], "standard": ["seed_standard"]}


def run_configs(args, gan_type: str, impl: str, n: int) -> list:
    """The composed configs of the N runs: the GAN type's presets in turn, seeds 0, 1, ..."""
    presets = PRESETS[gan_type]
    return [measure.compose([*base_overrides(args), f"+experiment={presets[i % len(presets)]}",
                             f"seed={i // len(presets)}", f"model.impl={impl}"])
            for i in range(n)]


class Built:
    """One run's networks, optimisers, objective and generators, as the trainer builds them
    (its own generators for the initial weights and masks and for the noise)."""

    def __init__(self, cfg, device: torch.device):
        seed = int(cfg.seed)
        self.gan = instantiate(cfg.model, generator=torch.Generator().manual_seed(seed))
        self.gan.to(device)
        self.model_generator = torch.Generator(device).manual_seed(seed)
        use_generator(self.gan.discriminator, self.model_generator)
        self.noise_generator = torch.Generator(device).manual_seed(seed)
        self.noise = instantiate(cfg.noise)
        self.opt_d = instantiate(cfg.optimizer.d)(self.gan.discriminator.parameters())
        self.opt_g = instantiate(cfg.optimizer.g)(self.gan.generator.parameters())
        self.objective = instantiate(cfg.gan_type)


def autocast_of(cfg, device: torch.device):
    name = str(cfg.trainer.get("precision", "fp32"))
    return lambda: train_autocast(device, name)


class AloneStepper:
    """One run stepped with ``train_step``, on random batches of the data."""

    def __init__(self, cfg, data: torch.Tensor, device: torch.device):
        self.run, self.data, self.device = Built(cfg, device), data, device
        self.batch, self.step_count = int(cfg.trainer.batch_size), 0
        run = self.run
        self.parts = Parts(run.gan.generator, run.gan.discriminator, run.opt_d, run.opt_g,
                           run.objective, str(cfg.trainer.fake_mode), autocast_of(cfg, device))

    def noise(self) -> torch.Tensor:
        return self.run.noise(self.batch, self.run.gan.latent_dim, self.run.noise_generator,
                              self.device)

    def step(self):
        index = torch.randint(len(self.data), (self.batch,), generator=self.run.noise_generator,
                              device=self.device)
        losses = train_step(self.parts, self.data[index], self.noise, self.step_count)
        self.step_count += 1
        return losses


class SeparateStepper:
    """N runs, one ``train_step`` each per round, one after another in this process."""

    def __init__(self, cfgs, data: torch.Tensor, device: torch.device):
        self.runs = [AloneStepper(cfg, data, device) for cfg in cfgs]

    def step(self):
        return [run.step() for run in self.runs]


class PackedStepper:
    """The same N runs packed (``conv_impl``), their streams drawn per run."""

    def __init__(self, cfgs, data: torch.Tensor, device: torch.device, conv_impl: str):
        built = [Built(cfg, device) for cfg in cfgs]
        self.data, self.device = data, device
        self.batch, self.n, self.step_count = int(cfgs[0].trainer.batch_size), len(cfgs), 0
        model = pack([b.gan for b in built], conv_impl)
        self.pack = Pack(model.generator, model.discriminator,
                         PackedKerasAdam.from_single(list(model.discriminator.parameters()),
                                                     [b.opt_d for b in built]),
                         PackedKerasAdam.from_single(list(model.generator.parameters()),
                                                     [b.opt_g for b in built]),
                         packed_objective([b.objective for b in built], device),
                         str(cfgs[0].trainer.fake_mode), autocast_of(cfgs[0], device))
        dropout = getattr(built[0].gan.discriminator, "dropout", None)
        self.streams = PackedStreams([b.noise_generator for b in built],
                                     [b.model_generator for b in built], built[0].noise,
                                     model.latent_dim, self.batch, device,
                                     dropout=getattr(dropout, "p", None))
        self.generators = [b.noise_generator for b in built]

    def step(self):
        index = torch.stack([torch.randint(len(self.data), (self.batch,), generator=g,
                                           device=self.device) for g in self.generators])
        z_fake, z_g, masks = self.streams.step_draws()
        losses = packed_train_step(self.pack, self.data[index], z_fake, z_g, masks,
                                   self.step_count)
        self.step_count += 1
        return losses


def _process_worker(args, gan_type: str, impl: str, index: int, threads: int, steps: int,
                    warmup: int, barrier, results) -> None:
    """One of the N separate processes: run ``index`` alone, timed from the shared barrier."""
    try:
        torch.set_num_threads(threads)
        cfg = run_configs(args, gan_type, impl, args.pack)[index]
        trainer = cfg.trainer
        device = resolve_device(str(trainer.device))
        configure_backends(device, trainer.tf32, trainer.deterministic)
        data = instantiate(cfg.dataset).load(int(cfg.seed)).x.to(device)
        stepper = AloneStepper(cfg, data, device)
        for _ in range(warmup):
            stepper.step()
        sync(device)
    except BaseException as exc:  # the others must not wait for this one at the barrier
        barrier.abort()
        results.put((index, None, f"{type(exc).__name__}: {exc}"))
        return
    try:
        barrier.wait()
    except threading.BrokenBarrierError:  # another process failed: it reports why
        results.put((index, None, None))
        return
    t0 = time.perf_counter()
    for _ in range(steps):
        stepper.step()
    sync(device)
    results.put((index, time.perf_counter() - t0, None))


def processes(args, gan_type: str, impl: str, steps: int, warmup: int) -> dict:
    """N runs as N processes side by side (spawned, as a launcher's workers are), each with
    ``threads // N`` threads (at least 1): seconds per step of each, timed from a barrier
    all of them pass once built and warmed up."""
    n = args.pack
    threads = max(1, torch.get_num_threads() // n)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(n), context.Queue()
    workers = [context.Process(target=_process_worker, daemon=True,
                               args=(args, gan_type, impl, i, threads, steps, warmup, barrier,
                                     results))
               for i in range(n)]
    for worker in workers:
        worker.start()
    done = []
    while len(done) < n:
        try:
            done.append(results.get(timeout=5))
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers) and results.empty():
                codes = [worker.exitcode for worker in workers]
                raise RuntimeError(f"the separate processes ended without a result (exit "
                                   f"codes {codes})") from None
    for worker in workers:
        worker.join()
    failed = [message for _, seconds, message in done if seconds is None]
    if failed:
        reason = next((message for message in failed if message), "no reason given")
        raise RuntimeError(f"a separate process failed: {reason}")
    return {"threads_each": threads, "seconds": [seconds for _, seconds, _ in sorted(done)]}


def flops(stepper) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        stepper.step()
    return counter.get_total_flops()


def timed(steppers: dict, device: torch.device, steps: int, warmup: int) -> dict:
    """Wall seconds per step of each stepper, one step of each per round (interleaved)."""
    for _ in range(warmup):
        for stepper in steppers.values():
            stepper.step()
    times = {name: [] for name in steppers}
    for _ in range(steps):
        for name, stepper in steppers.items():
            sync(device)
            t0 = time.perf_counter()
            stepper.step()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def bench(args) -> dict:
    """Every (gan_type, impl) pair of the arguments: 1 run alone, N runs separately, N runs
    packed with each ``--pack-conv`` implementation."""
    n = args.pack
    convs = list(CONV_IMPLS) if args.pack_conv == "all" else [args.pack_conv]
    results, peaks, device = {}, {}, None
    for gan_type in args.gan_types:
        for impl in args.impls:
            cfgs = run_configs(args, gan_type, impl, n)
            trainer = cfgs[0].trainer
            if trainer.threads:
                torch.set_num_threads(trainer.threads)
            device = resolve_device(str(trainer.device))
            configure_backends(device, trainer.tf32, trainer.deterministic)
            data = instantiate(cfgs[0].dataset).load(int(cfgs[0].seed)).x.to(device)
            steppers = {"alone": AloneStepper(cfgs[0], data, device),
                        "separate": SeparateStepper(cfgs, data, device)}
            for conv in convs:
                steppers[f"packed/{conv}"] = PackedStepper(cfgs, data, device, conv)
            precision = str(trainer.get("precision", "fp32"))
            if not peaks:
                peaks = measure.gemm_peaks(device, args.peak_size, precision)
            times = timed(steppers, device, args.steps, args.warmup)
            for name, value in measure.gemm_peaks(device, args.peak_size, precision).items():
                peaks[name] = max(peaks[name], value)
            separate_processes = (processes(args, gan_type, impl, args.steps, args.warmup)
                                  if args.pack_processes else None)
            # a pack does its runs' arithmetic, no more: its FLOPs are theirs (torch's counter
            # would count a grouped convolution's weight gradient once per group too many)
            separate_flops = flops(steppers["separate"])
            rows = {}
            for name, stepper in steppers.items():
                runs = 1 if name == "alone" else n
                median = statistics.median(times[name])
                work = flops(stepper) if name == "alone" else separate_flops
                rows[name] = {"runs": runs, "median_s": median, "min_s": min(times[name]),
                              "run_steps_per_s": runs / median, "gflop_per_step": work / 1e9,
                              "gflops": work / 1e9 / median, "times_s": times[name]}
            if separate_processes:  # the slowest process sets the pace of the N
                wall = max(separate_processes["seconds"])
                rows["processes"] = {
                    "runs": n, "median_s": wall / args.steps, "min_s": wall / args.steps,
                    "run_steps_per_s": n * args.steps / wall,
                    "gflop_per_step": separate_flops / 1e9,
                    "gflops": separate_flops / 1e9 / (wall / args.steps),
                    "threads_each": separate_processes["threads_each"],
                    "times_s": [seconds / args.steps for seconds in separate_processes["seconds"]]}
            best = max((k for k in rows if k.startswith("packed/")),
                       key=lambda k: rows[k]["run_steps_per_s"])
            for row in rows.values():
                row["vs_separate"] = row["run_steps_per_s"] / rows["separate"]["run_steps_per_s"]
                if "processes" in rows:
                    row["vs_processes"] = (row["run_steps_per_s"]
                                           / rows["processes"]["run_steps_per_s"])
            results[f"{gan_type}/{impl}"] = {"gan_type": gan_type, "impl": impl, "rows": rows,
                                             "fastest_conv": best.split("/", 1)[1]}
    peak = max(peaks.values())
    for result in results.values():
        for row in result["rows"].values():
            row["fraction_of_peak"] = row["gflops"] / peak
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "device": str(device), "pack": n,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg()),
            "platform": platform.platform(), "batch_size": args.batch_size,
            "steps": args.steps, "warmup": args.warmup, "overrides": list(args.overrides),
            "precision": precision, "matmul_peak_gflops": peak, "matmul_peaks_gflops": peaks,
            "results": results}


def format_report(report: dict) -> str:
    peaks = ", ".join(f"{name} {value:.1f}"
                      for name, value in report["matmul_peaks_gflops"].items())
    lines = [f"device {report['device']}, torch {report['torch']}, {report['threads']} threads, "
             f"load average {report['load_average'][0]:.2f}, batch {report['batch_size']}, "
             f"{report['steps']} timed steps after {report['warmup']} warm-up (interleaved)",
             f"{report['precision']} matmul peak (best GEMM in this process): "
             f"{report['matmul_peak_gflops']:.1f} GFLOP/s ({peaks})", ""]
    rows = []
    for result in report["results"].values():
        for name, row in result["rows"].items():
            rows.append({"gan_type": result["gan_type"], "impl": result["impl"],
                         "runs": f"{row['runs']} {name}", "s/step": f"{row['median_s']:.4f}",
                         "run-steps/s": f"{row['run_steps_per_s']:.1f}",
                         "GFLOP/s": f"{row['gflops']:.1f}",
                         "% of peak": f"{100 * row['fraction_of_peak']:.0f}%",
                         "vs separate": f"{row['vs_separate']:.2f}x",
                         **({"vs processes": f"{row['vs_processes']:.2f}x"}
                            if "vs_processes" in row else {})})
    lines.append(_markdown(rows))
    lines.append("separate: the N runs one after another in this process, interleaved with the "
                 "others; processes: N processes side by side, timed after the rounds")
    for result in report["results"].values():
        lines.append(f"{result['gan_type']}/{result['impl']}: fastest packed convolutions here: "
                     f"{result['fastest_conv']}")
    return "\n".join(lines)
