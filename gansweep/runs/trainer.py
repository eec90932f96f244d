"""What drives a run: one flat loop over epochs and batches around what the run *is*.

``gansweep.gan.state.RunState`` is the run as a value (networks, optimisers, objective,
counters and its own random streams, built from the config with ``hydra.utils.instantiate``);
``Run`` drives it: the run dir, checkpoints (the files and the rules for continuing one are
in ``gansweep.runs.checkpoint``), evaluation, pictures, summary.json (``gansweep.runs.summary``),
loggers and signals. ``Run.train()`` runs one to the end; ``start`` / ``advance`` /
``finish`` let one process drive several, interleaved. Process-wide settings (threads,
TF32, deterministic kernels, the CUDA device) are set once per process by
``gansweep.device.configure_process``, never by a run. Evaluation (``gansweep.fid``,
``gansweep.data.mixtures.ModeMetrics``) and pictures take a sampling function, never the run. On a
GPU the loop reads nothing back to the host except at logging steps (both losses in one
transfer), where step times are taken too (``StepClock``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import statistics
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from gansweep import artifacts, schema
from gansweep.runs import checkpoint, extend, summary
from gansweep.runs.checkpoint import Diverged
from gansweep.device import (StepClock, configure_process, isolated_rng,  # noqa: F401
                             memory_report, precision, resolve_device)
from gansweep.fid.evaluator import build_evaluator
from gansweep.identity import fingerprint, plain_config
from gansweep.runs.loggers import build_logger
from gansweep.gan.state import RunState
from gansweep.gan.noise import sample_generator
from gansweep.pictures import read_grid
from gansweep.runs.progress import Progress
from gansweep.runs.signals import Interrupted, on_stop_signals

log = logging.getLogger(__name__)


class Run:
    """What drives one run (``RunState``, what the run is): its dir, checkpoints, evaluation,
    summary.json, loggers and signals.

    ``train()`` runs it to the end. The stepping API lets a caller drive several runs in one
    process, interleaved: ``start()``, ``advance()`` (one batch, with the checkpoints, logs
    and evaluations due at it) until ``done``, then ``finish()``; ``close()`` in any case
    (``train`` shows the order, and the handling of ``Diverged`` and ``Interrupted``)."""

    def __init__(self, cfg: DictConfig, out_dir: Path | str):
        self.cfg = cfg
        self.dirs = artifacts.RunDir(out_dir)
        schema.check(cfg)  # every value range, before anything is built or written
        artifacts.ensure_writable(self.dirs.root)
        self.device = resolve_device(str(cfg.trainer.device))
        self.precision = precision(self.device)
        self.dataset = instantiate(cfg.dataset)
        self.evaluator = self.dataset.evaluator or build_evaluator(  # the fid group's
            cfg.get("fid"), data_root=cfg.dataset.get("root", "data"), device=self.device,
            fetch_data=bool(cfg.dataset.get("fetch", True)), dataset=self.dataset)
        # e.g. LeNet for a dataset not of digits, Inception weights: fail now, not after training
        self.evaluator.preflight()
        data = self.dataset.load(cfg.seed)
        schema.require(cfg.trainer.batch_size <= len(data), "trainer.batch_size",
                       cfg.trainer.batch_size, f"must be <= the {len(data)} training samples "
                       "available (raise dataset.limit or lower the batch size)")
        self.state = RunState(cfg, self.device, data.x)
        self.stop_signal: int | None = None
        self.wall = time.monotonic  # the checkpoint_minutes clock (replaceable in tests)
        self.last_checkpoint = self.wall()
        self.best: dict | None = None  # the best evaluation so far (update_best)
        self.batches_per_epoch = self.state.batches_per_epoch

    # what the run is, by the names the driver's methods use
    g = property(lambda self: self.state.g)
    d = property(lambda self: self.state.d)
    data = property(lambda self: self.state.data)
    objective = property(lambda self: self.state.objective)
    counters = property(lambda self: self.state.counters)

    def sampler(self, seed_offset: int, batch_size: int | None = None):
        """``sample(n)``: n samples of the current G in inference mode on noise seeded by the
        run's seed + ``seed_offset``; the callable evaluators and pictures take."""
        state = self.state
        return lambda n: sample_generator(state.g, state.noise_source, state.latent_dim, n,
                                          self.cfg.seed + seed_offset, self.device,
                                          batch_size or self.cfg.trainer.batch_size)

    def evaluate(self) -> dict:
        """The evaluator's numbers for the current G (on noise of its own, evaluation never
        draws from the training streams)."""
        # each evaluator says which noise stream and chunk size its samples come from (a
        # user's own may leave it to the defaults: seed + 2, the run's batch size)
        sample = self.sampler(getattr(self.evaluator, "seed_offset", 2),
                              getattr(self.evaluator, "sample_batch", None))
        with isolated_rng(self.device):
            return self.evaluator(sample)

    def visualize(self, samples: torch.Tensor, path: Path) -> Path:
        with isolated_rng(self.device):
            return self.dataset.visualizer(
                samples, path, real=self.data, kernel=getattr(self.objective, "kernel", None),
                step=self.counters.step, title=f"{self.cfg.name}  step {self.counters.step}")

    def final_samples(self) -> Path:
        """samples/final.png: the trained G on noise seeded by seed + 1, as many samples as
        the visualiser asks for (``final_count``; default one batch)."""
        n = getattr(self.dataset.visualizer, "final_count", None) or self.cfg.trainer.batch_size
        return self.visualize(self.sampler(1)(n), self.dirs.final_sample)

    def last_sample(self) -> str | None:
        grids = sorted(p for p in self.dirs.samples.glob("[0-9]*_[0-9]*.png"))
        return str(grids[-1].relative_to(self.dirs.root)) if grids else None

    def status(self, status: str, **extra) -> dict:
        """summary.json; a final one (not ``running``) goes to the loggers too."""
        entries = summary.entries(
            status, self.cfg, self.counters, batches_per_epoch=self.batches_per_epoch,
            wall_seconds=round(self.counters.seconds, 3), device=str(self.device),
            precision=self.precision, deterministic=bool(self.cfg.trainer.deterministic),
            seed=self.cfg.seed, host=socket.gethostname(), torch_threads=torch.get_num_threads(),
            **memory_report(self.device), **extra)
        record = self.dirs.root / extend.RECORD  # which shorter run this one continues
        if record.exists():
            entries["extended_from"] = json.loads(record.read_text())
        artifacts.write_json(entries, self.dirs.summary)
        if status != "running" and hasattr(self, "logger"):
            self.logger.log_summary(entries)
        return entries

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Everything checkpoints/last.pt holds: an exact resume point."""
        return {**self.state.state_dict(), "fingerprint": fingerprint(self.cfg),
                # the noise generator's state only fits a generator of the same device type
                "device_type": self.device.type, "precision": self.precision,
                "config": plain_config(self.cfg),
                "best": self.best}  # so a resumed run keeps comparing against the right best

    def load_state_dict(self, state: dict) -> None:
        self.state.load_state_dict(state)
        self.best = state.get("best")

    def save_checkpoint(self) -> None:
        """checkpoints/last.pt, atomically, never over a good one with non-finite weights."""
        if not checkpoint.weights_finite(self.g, self.d):
            raise Diverged("non-finite weights")
        artifacts.save_checkpoint(self.state_dict(), self.dirs.checkpoint)
        self.last_checkpoint = self.wall()

    def resume(self) -> bool:
        """Continue from checkpoints/last.pt when trainer.resume=auto and one exists."""
        path = self.dirs.checkpoint
        if str(self.cfg.trainer.resume) == "never" or not path.exists():
            return False
        # to CPU first: RNG states must stay CPU ByteTensors; load_state_dict moves the rest
        state = checkpoint.load(path)
        checkpoint.check_resumable(state, self.cfg, self.dirs.root, self.device.type,
                                   self.precision)
        self.load_state_dict(state)
        # rows logged after the checkpoint by the interrupted run are logged again
        artifacts.truncate_metrics(self.dirs.metrics, self.counters.step)
        log.info("resumed from %s at epoch %d, batch %d (step %d)", path, self.counters.epoch,
                 self.counters.batch, self.counters.step)
        return True

    def update_best(self, values: dict, epoch: int) -> bool:
        """checkpoints/best.pt keeps G and D of the evaluation with the best value of the
        evaluator's ``best_key`` so far. True when this one became the best."""
        record = checkpoint.best_record(values, self.best, self.evaluator.best_key,
                                        self.evaluator.lower_is_better, epoch,
                                        self.counters.step - 1)
        if record is None:
            return False
        self.best = record
        checkpoint.save_best(self.dirs.root / "checkpoints" / "best.pt", self.g, self.d,
                             record, self.cfg)
        return True

    # ------------------------------------------------------------------ the run
    def train(self) -> dict:
        """The whole run: ``start``, ``advance`` until ``done``, ``finish``, with SIGTERM and
        Ctrl-C stopping it at the next batch boundary with a checkpoint."""
        self.start()
        try:
            with on_stop_signals(self._request_stop):
                while not self.done:
                    self.advance()
        except Diverged as exc:
            return self.diverged(exc)
        except Interrupted as exc:
            self.status("interrupted", error=str(exc), last_sample=self.last_sample())
            raise
        finally:
            self.close()
        return self.finish()

    def start(self) -> None:
        """Resume (or start over), open the metrics log and the loggers, say "running"."""
        cfg = self.cfg.trainer
        if not self.resume():
            artifacts.truncate_metrics(self.dirs.metrics, 0)  # trainer.resume=never: start over
        self.metrics = artifacts.MetricsLog(self.dirs.metrics)
        self._catch_up_evaluation(self.metrics)
        self.logger = build_logger(self.cfg.get("logger"), self.dirs.root,
                                   config=plain_config(self.cfg))
        self.progress = Progress(str(cfg.progress), cfg.epochs, self.batches_per_epoch)
        self.step_times: list[float] = []
        self.status("running", pid=os.getpid())
        log.info("training %s: %d epochs x %d batches of %d on %s (%d torch threads)",
                 self.cfg.name, cfg.epochs, self.batches_per_epoch, cfg.batch_size, self.device,
                 torch.get_num_threads())
        self.stop_signal = None
        self.clock = StepClock(self.device)
        self._epoch_started = False

    @property
    def done(self) -> bool:
        return self.state.finished

    def close(self) -> None:
        """The progress bar, metrics log and loggers closed (after ``finish`` or a stop)."""
        self.progress.close()
        self.metrics.close()
        self.logger.close()

    def diverged(self, exc: Diverged) -> dict:
        """summary.json of a run stopped by a non-finite value (its last good checkpoint and
        samples are kept)."""
        log.warning("%s diverged: %s; last good checkpoint and samples kept", self.cfg.name, exc)
        return self.status("diverged", error=str(exc), diverged_at=vars(self.counters).copy(),
                           last_sample=self.last_sample(), objective=math.inf,
                           **summary.best_entries(self.best))

    def finish(self) -> dict:
        """The final checkpoint, samples and evaluation, and summary.json "ok"."""
        c = self.counters
        self.save_checkpoint()
        # The final evaluation (minutes for an Inception FID) stops at once on SIGTERM or
        # Ctrl-C; the checkpoint above is final, so a relaunch only evaluates again.
        try:
            with on_stop_signals(self._stop_now):
                final = self.final_samples()
                results = self.evaluate()
        except Interrupted as exc:
            self.status("interrupted", error=f"{exc} during the final evaluation",
                        last_sample=self.last_sample())
            raise
        except Exception as exc:  # train.py records the failure; the trackers hear it too
            self.logger.log_summary({"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        if self.update_best(results, c.epoch - 1):  # the final G competes too
            self.save_checkpoint()  # last.pt records that best, for a later longer resume
        return self.status(
            "ok", **results, **summary.best_entries(self.best), last_sample=self.last_sample(),
            final_sample=str(final.relative_to(self.dirs.root)),
            seconds_per_step_median=(statistics.median(self.step_times)
                                     if self.step_times else None))

    def _catch_up_evaluation(self, metrics: artifacts.MetricsLog) -> None:
        """A finished run continued to a larger budget (gansweep.runs.extend) evaluated its last
        epoch into summary.json only; a run trained to the larger budget from the start
        logged that evaluation as a metrics.jsonl row and let it compete for best.pt. Do the
        same now, from the same G (evaluation is seeded: the same numbers)."""
        c, last = self.counters, artifacts.last_row(self.dirs.metrics)
        if c.batch or not c.epoch or last is None or "d_loss" not in last \
                or last.get("step") != c.step - 1:
            return  # not a finished run continued: the loop wrote what was due
        if self.best and self.best["epoch"] == c.epoch - 1:
            # that best was the final evaluation's, which a longer run does not make: it had
            # no earlier best (gansweep.runs.extend refuses a donor where it had) or this row's
            self.best = None
            (self.dirs.root / "checkpoints" / "best.pt").unlink(missing_ok=True)
        if not self.evaluator.due(c.epoch, self.cfg.trainer.epochs):
            return
        row = {"epoch": c.epoch - 1, "step": c.step - 1, **self.evaluator.row(self.evaluate())}
        metrics.write(row)
        self.update_best(row, row["epoch"])

    def checkpoint_due(self, batch: int) -> bool:
        """At every epoch start (the previous epoch's end), every ``checkpoint_every``
        batches and once ``checkpoint_minutes`` passed since the last one; SIGTERM/SIGINT
        and the end of training always write one."""
        cfg = self.cfg.trainer
        if batch == 0 or (cfg.checkpoint_every and batch % cfg.checkpoint_every == 0):
            return True
        minutes = cfg.checkpoint_minutes
        return bool(minutes) and self.wall() - self.last_checkpoint >= 60 * minutes

    def _account(self, clock: StepClock) -> tuple[float, int]:
        """Add the wall time since the clock's last lap to the counters and step times."""
        seconds, steps = clock.lap()
        self.counters.seconds += seconds
        if steps:
            self.step_times.extend([seconds / steps] * steps)
        return seconds, steps

    def advance(self) -> None:
        """Train one batch, with what is due around it: a checkpoint before it (or the stop a
        signal asked for), a picture and a log row after it, and at an epoch's end the
        evaluation. Raises ``Diverged`` on a non-finite value, ``Interrupted`` on a stop.
        A driver that trains the batch itself (several runs in one fused step,
        ``gansweep.packed``) calls ``before_batch``, its step, then ``after_batch``."""
        self.before_batch()
        self.after_batch(self.state.train_batch())

    def before_batch(self) -> None:
        """What is due before the next batch: the stop a signal asked for (``Interrupted``,
        after a checkpoint) or a checkpoint at its cadence."""
        c, clock = self.counters, self.clock
        if not self._epoch_started:
            clock.restart()  # epoch-end evaluation is not training time
            self._epoch_started = True
        if self.stop_signal is not None:
            self._account(clock)
            self.save_checkpoint()
            raise Interrupted(self.stop_signal)
        if self.checkpoint_due(c.batch):
            self._account(clock)  # the checkpoint reads the weights: a sync anyway
            self.save_checkpoint()  # a clean batch boundary: exact resume point
            self.status("running", pid=os.getpid())

    def after_batch(self, out: dict) -> None:
        """What is due after a trained batch (``RunState.train_batch``'s ``out``): its picture,
        its log row, the counters moved on and, at an epoch's end, the evaluation."""
        cfg, c, clock = self.cfg.trainer, self.counters, self.clock
        clock.tick()
        if c.batch % cfg.sample_every == 0:
            if not bool(torch.isfinite(out["fakes"]).all()):
                raise Diverged(f"non-finite generator output at epoch {c.epoch}, "
                               f"batch {c.batch}")
            picture = self.visualize(out["fakes"], self.dirs.sample(c.epoch, c.batch))
            self.logger.log_grid("samples", read_grid(picture), c.step)
        last = c.batch == self.batches_per_epoch - 1
        if c.batch % cfg.log_every == 0 or last:
            # one read-back
            d_value, g_value = torch.stack([out["d_loss"], out["g_loss"]]).tolist()
            if not (math.isfinite(d_value) and math.isfinite(g_value)):
                raise Diverged(f"non-finite loss at epoch {c.epoch}, batch {c.batch}: "
                               f"d_loss={d_value}, g_loss={g_value}")
            seconds, steps = self._account(clock)
            row = {"epoch": c.epoch, "batch": c.batch, "step": c.step,
                   "d_loss": d_value, "g_loss": g_value, "eps": out["eps"],
                   "lr_d": out["lr_d"], "lr_g": out["lr_g"], "seconds": round(c.seconds, 4)}
            self.metrics.write(row)
            self.logger.log_scalars(row, c.step)
            self.progress.update(c, d_value, g_value, seconds / max(steps, 1))
        if not self.state.advance():
            return
        self._epoch_started = False
        if self.stop_signal is not None and self.done:  # came in the last batch
            self._account(clock)
            self.save_checkpoint()
            raise Interrupted(self.stop_signal)
        # every metric every fid.every_epochs epochs; the last epoch's go to summary.json
        if self.evaluator.due(c.epoch, cfg.epochs):
            row = {"epoch": c.epoch - 1, "step": c.step - 1,
                   **self.evaluator.row(self.evaluate())}
            self.metrics.write(row)  # logged as the epoch's last batch: a resume keeps the row
            self.update_best(row, row["epoch"])

    # ------------------------------------------------------------------ signals
    def request_stop(self, signum: int) -> None:
        """Stop at the next batch boundary, with a checkpoint (``advance`` raises
        ``Interrupted``); what a driver of several runs calls on each from its handler."""
        self.stop_signal = signum

    def _request_stop(self, signum, frame) -> None:
        self.request_stop(signum)

    @staticmethod
    def _stop_now(signum, frame) -> None:
        raise Interrupted(signum)


def run(cfg: DictConfig, out_dir: Path | str) -> dict:
    """Train one configuration into ``out_dir`` (resuming or skipping as it finds it), holding
    the dir's lock: a second process on the same dir refuses, naming the holder."""
    out_dir = Path(out_dir)
    artifacts.ensure_writable(out_dir)
    with artifacts.RunLock(out_dir):
        done = summary.finished(cfg, out_dir)
        if done is not None:
            log.info("%s already finished this config (summary.json status ok); skipping", out_dir)
            return done
        extend.prepare(cfg, out_dir)  # a finished shorter run of this config: continue it
        schema.check(cfg)  # e.g. trainer.device=cuda without CUDA: one line, before any setting
        configure_process(cfg)
        return Run(cfg, out_dir).train()
