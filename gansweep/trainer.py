"""The training loop: one flat loop over epochs and batches around ``step.train_step``.

Everything a run is made of is built from its config with ``hydra.utils.instantiate``
(model, optimisers, GAN type with its kernel, dataset with its visualiser and evaluator,
noise); evaluation (``gansweep.fid``, ``gansweep.mixtures.ModeMetrics``) and pictures take a
sampling function, never the run. The run owns its state; the checkpoint files and the rules
for continuing one are in ``gansweep.checkpoint``, summary.json in ``gansweep.summary``. On a
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

from gansweep import artifacts, checkpoint, extend, schema, summary
from gansweep.checkpoint import Counters, Diverged
from gansweep.device import (StepClock, configure_backends, isolated_rng, memory_report,
                             precision, resolve_device, select, train_autocast)
from gansweep.fid.evaluator import build_evaluator
from gansweep.identity import fingerprint, plain_config
from gansweep.loggers import build_logger
from gansweep.noise import sample_generator
from gansweep.pictures import read_grid
from gansweep.progress import Progress
from gansweep.signals import Interrupted, on_stop_signals
from gansweep.step import Parts, train_step

log = logging.getLogger(__name__)


class Run:
    """One training run: what the config builds, the counters, and the run dir."""

    def __init__(self, cfg: DictConfig, out_dir: Path | str):
        self.cfg = cfg
        self.dirs = artifacts.RunDir(out_dir)
        schema.check(cfg)  # every value range, before anything is built or written
        artifacts.ensure_writable(self.dirs.root)
        if cfg.trainer.threads:
            torch.set_num_threads(cfg.trainer.threads)
        self.device = resolve_device(str(cfg.trainer.device))
        configure_backends(self.device, cfg.trainer.tf32, cfg.trainer.deterministic)
        select(self.device)
        self.precision = precision(self.device)
        torch.manual_seed(cfg.seed)  # Dropout and initialisation
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)  # noise, shuffles
        self.dataset = instantiate(cfg.dataset)
        self.evaluator = self.dataset.evaluator or build_evaluator(  # the fid group's
            cfg.get("fid"), data_root=cfg.dataset.get("root", "data"), device=self.device,
            fetch_data=bool(cfg.dataset.get("fetch", True)))
        self.evaluator.preflight()  # e.g. Inception weights: fail now, not after training
        data = self.dataset.load(cfg.seed)
        schema.require(cfg.trainer.batch_size <= len(data), "trainer.batch_size",
                       cfg.trainer.batch_size, f"must be <= the {len(data)} training samples "
                       "available (raise dataset.limit or lower the batch size)")
        self.data = data.x.to(self.device)
        gan = instantiate(cfg.model)
        self.g, self.d, self.latent_dim = (gan.generator.to(self.device),
                                           gan.discriminator.to(self.device), gan.latent_dim)
        self.noise_source = instantiate(cfg.noise)
        self.opt_d, self.opt_g = (instantiate(cfg.optimizer.d)(self.d.parameters()),
                                  instantiate(cfg.optimizer.g)(self.g.parameters()))
        self.objective = instantiate(cfg.gan_type)
        precision_name = str(cfg.trainer.get("precision", "fp32"))  # bf16: autocast forwards
        self.parts = Parts(self.g, self.d, self.opt_d, self.opt_g, self.objective,
                           str(cfg.trainer.fake_mode))
        if precision_name != "fp32":  # fp32 keeps Parts' no-op context: nothing per step
            train_autocast(self.device, precision_name)  # an unknown name fails here, once
            self.parts.autocast = lambda: train_autocast(self.device, precision_name)
        self.counters = Counters()
        self.perm: torch.Tensor | None = None  # this epoch's shuffle
        self.perm_epoch: int | None = None
        self.stop_signal: int | None = None
        self.wall = time.monotonic  # the checkpoint_minutes clock (replaceable in tests)
        self.last_checkpoint = self.wall()
        self.best: dict | None = None  # the best evaluation so far (update_best)
        per_epoch = len(self.data) // cfg.trainer.batch_size  # the seed drops the last partial batch
        cap = cfg.trainer.max_batches_per_epoch
        self.batches_per_epoch = min(per_epoch, cap) if cap else per_epoch

    def noise(self) -> torch.Tensor:
        return self.noise_source(self.cfg.trainer.batch_size, self.latent_dim, self.generator,
                                 self.device)

    def sampler(self, seed_offset: int, batch_size: int | None = None):
        """``sample(n)``: n samples of the current G in inference mode on noise seeded by the
        run's seed + ``seed_offset``; the callable evaluators and pictures take."""
        return lambda n: sample_generator(self.g, self.noise_source, self.latent_dim, n,
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
        state = {
            "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
            "opt_d": self.opt_d.state_dict(), "opt_g": self.opt_g.state_dict(),
            "counters": vars(self.counters).copy(), "perm": self.perm,
            "perm_epoch": self.perm_epoch,
            "rng": {"torch": torch.get_rng_state(), "noise": self.generator.get_state()},
            "fingerprint": fingerprint(self.cfg),
            # the noise generator's state only fits a generator of the same device type
            "device_type": self.device.type, "precision": self.precision,
            "config": plain_config(self.cfg),
            "best": self.best,  # so a resumed run keeps comparing against the right best
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["discriminator"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.counters = Counters(**state["counters"])
        perm = state["perm"]
        self.perm = perm.to(self.device) if perm is not None else None
        self.perm_epoch = state["perm_epoch"]
        self.best = state.get("best")
        # RNG states are CPU ByteTensors whatever the device (set_rng_state refuses others)
        rng = {name: value.cpu() for name, value in state["rng"].items()}
        torch.set_rng_state(rng["torch"])
        self.generator.set_state(rng["noise"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)

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
        cfg = self.cfg.trainer
        if not self.resume():
            artifacts.truncate_metrics(self.dirs.metrics, 0)  # trainer.resume=never: start over
        c = self.counters
        metrics = artifacts.MetricsLog(self.dirs.metrics)
        self._catch_up_evaluation(metrics)
        self.logger = build_logger(self.cfg.get("logger"), self.dirs.root,
                                   config=plain_config(self.cfg))
        progress = Progress(str(cfg.progress), cfg.epochs, self.batches_per_epoch)
        self.step_times: list[float] = []
        self.status("running", pid=os.getpid())
        log.info("training %s: %d epochs x %d batches of %d on %s (%d torch threads)",
                 self.cfg.name, cfg.epochs, self.batches_per_epoch, cfg.batch_size, self.device,
                 torch.get_num_threads())
        self.stop_signal = None
        try:
            with on_stop_signals(self._request_stop):
                self._loop(metrics, progress)
        except Diverged as exc:
            log.warning("%s diverged: %s; last good checkpoint and samples kept", self.cfg.name, exc)
            return self.status("diverged", error=str(exc), diverged_at=vars(c).copy(),
                               last_sample=self.last_sample(), objective=math.inf,
                               **summary.best_entries(self.best))
        except Interrupted as exc:
            self.status("interrupted", error=str(exc), last_sample=self.last_sample())
            raise
        finally:
            progress.close()
            metrics.close()
            self.logger.close()
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
        """A finished run continued to a larger budget (gansweep.extend) evaluated its last
        epoch into summary.json only; a run trained to the larger budget from the start
        logged that evaluation as a metrics.jsonl row and let it compete for best.pt. Do the
        same now, from the same G (evaluation is seeded: the same numbers)."""
        c, last = self.counters, artifacts.last_row(self.dirs.metrics)
        if c.batch or not c.epoch or last is None or "d_loss" not in last \
                or last.get("step") != c.step - 1:
            return  # not a finished run continued: the loop wrote what was due
        if self.best and self.best["epoch"] == c.epoch - 1:
            # that best was the final evaluation's, which a longer run does not make: it had
            # no earlier best (gansweep.extend refuses a donor where it had) or this row's
            self.best = None
            (self.dirs.root / "checkpoints" / "best.pt").unlink(missing_ok=True)
        if not self.evaluator.due(c.epoch, self.cfg.trainer.epochs):
            return
        row = {"epoch": c.epoch - 1, "step": c.step - 1, **self.evaluator.row(self.evaluate())}
        metrics.write(row)
        self.update_best(row, row["epoch"])

    def _checkpoint_due(self, batch: int) -> bool:
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

    def _loop(self, metrics: artifacts.MetricsLog, progress: Progress) -> None:
        cfg, c = self.cfg.trainer, self.counters
        clock = StepClock(self.device)
        while c.epoch < cfg.epochs:
            if self.perm_epoch != c.epoch:  # a fresh shuffle per epoch (kept across resumes)
                self.perm = torch.randperm(len(self.data), generator=self.generator,
                                           device=self.device)
                self.perm_epoch = c.epoch
            clock.restart()  # epoch-end evaluation is not training time
            while c.batch < self.batches_per_epoch:
                if self.stop_signal is not None:
                    self._account(clock)
                    self.save_checkpoint()
                    raise Interrupted(self.stop_signal)
                if self._checkpoint_due(c.batch):
                    self._account(clock)  # the checkpoint reads the weights: a sync anyway
                    self.save_checkpoint()  # a clean batch boundary: exact resume point
                    self.status("running", pid=os.getpid())
                index = self.perm[c.batch * cfg.batch_size:(c.batch + 1) * cfg.batch_size]
                # logged values are those the step uses: read before it updates them
                lr_d, lr_g, eps = (self.opt_d.current_lr(), self.opt_g.current_lr(),
                                   self.objective.eps(c.step))
                d_loss, g_loss, fakes = train_step(self.parts, self.data[index], self.noise,
                                                   c.step)
                clock.tick()
                if c.batch % cfg.sample_every == 0:
                    if not bool(torch.isfinite(fakes).all()):
                        raise Diverged(f"non-finite generator output at epoch {c.epoch}, "
                                       f"batch {c.batch}")
                    picture = self.visualize(fakes, self.dirs.sample(c.epoch, c.batch))
                    self.logger.log_grid("samples", read_grid(picture), c.step)
                last = c.batch == self.batches_per_epoch - 1
                if c.batch % cfg.log_every == 0 or last:
                    d_value, g_value = torch.stack([d_loss, g_loss]).tolist()  # one read-back
                    if not (math.isfinite(d_value) and math.isfinite(g_value)):
                        raise Diverged(f"non-finite loss at epoch {c.epoch}, batch {c.batch}: "
                                       f"d_loss={d_value}, g_loss={g_value}")
                    seconds, steps = self._account(clock)
                    row = {"epoch": c.epoch, "batch": c.batch, "step": c.step,
                           "d_loss": d_value, "g_loss": g_value, "eps": eps,
                           "lr_d": lr_d, "lr_g": lr_g, "seconds": round(c.seconds, 4)}
                    metrics.write(row)
                    self.logger.log_scalars(row, c.step)
                    progress.update(c, d_value, g_value, seconds / max(steps, 1))
                c.batch += 1
                c.step += 1
            c.epoch, c.batch = c.epoch + 1, 0
            if self.stop_signal is not None and c.epoch >= cfg.epochs:  # came in the last batch
                self._account(clock)
                self.save_checkpoint()
                raise Interrupted(self.stop_signal)
            # every metric every fid.every_epochs epochs; the last epoch's go to summary.json
            if self.evaluator.due(c.epoch, cfg.epochs):
                row = {"epoch": c.epoch - 1, "step": c.step - 1,
                       **self.evaluator.row(self.evaluate())}
                metrics.write(row)  # logged as the epoch's last batch: a resume keeps the row
                self.update_best(row, row["epoch"])

    # ------------------------------------------------------------------ signals
    def _request_stop(self, signum, frame) -> None:
        self.stop_signal = signum  # the loop stops at the next batch boundary

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
        return Run(cfg, out_dir).train()
