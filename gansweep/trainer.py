"""The seed's training loop (docs/study.md, "Training loop"), one batch at a time:

1. z ~ noise; fakes = G(z) in inference mode (Keras ``G.predict``).
2. every ``sample_every`` batches: a grid of the fakes ``EEEE_BBBB.png``.
3. D step: one update on cat(real, fakes) against the objective's targets.
4. G step: new z, one update of G through D with D's weights frozen but its Dropout active
   (Keras ``train_on_batch`` of the combined model runs in the training phase).
5. log epoch, batch, losses, eps, learning rates.

Checkpoints are written at batch boundaries on their own cadence (``_checkpoint_due``).
On a GPU the step reads nothing back to the host: losses are read (once, both together)
only at logging steps, and step times are taken at those points (``StepClock``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gansweep import artifacts, evaluation, fid
from gansweep.data import load_dataset
from gansweep.device import (StepClock, configure_backends, isolated_rng, memory_report, precision,
                             full_precision, resolve_device, select, train_autocast)
from gansweep.loggers import build_logger
from gansweep.mixtures import build_mixture, mode_metrics, scatter
from gansweep.models import build_models
from gansweep.objectives import build_objective
from gansweep.optim import build_optimizers
from gansweep.validate import validate

log = logging.getLogger(__name__)


def sample_noise(cfg: DictConfig, n: int, dim: int, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    if str(cfg.dist) == "uniform":
        u = torch.rand(n, dim, generator=generator, device=device)
        return u * (cfg.high - cfg.low) + cfg.low
    return torch.randn(n, dim, generator=generator, device=device) * cfg.std


@torch.no_grad()
def sample_generator(g: torch.nn.Module, noise_cfg: DictConfig, latent_dim: int, n: int,
                     seed: int, device: torch.device, batch_size: int) -> torch.Tensor:
    """n samples of G in inference mode on noise fixed by ``seed``, in chunks of batch_size;
    G's train/eval mode is restored afterwards."""
    was_training = g.training
    g.eval()
    generator = torch.Generator(device).manual_seed(seed)
    chunks = []
    for start in range(0, n, batch_size):
        z = sample_noise(noise_cfg, min(batch_size, n - start), latent_dim, generator, device)
        chunks.append(g(z))
    g.train(was_training)
    return torch.cat(chunks)


@dataclass
class Counters:
    epoch: int = 0  # current epoch
    batch: int = 0  # next batch to train within the epoch
    step: int = 0  # batches trained in total (the eps schedule's t)
    seconds: float = 0.0  # training wall time so far, summed over resumes


class Diverged(RuntimeError):
    """A loss or a weight became NaN or Inf."""


class ResumeError(RuntimeError):
    """The output dir holds a checkpoint that this config cannot continue."""


class Interrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was written at the next batch boundary."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# Settings that change what a run computes: a checkpoint made under other values is refused.
FINGERPRINT_KEYS = ("model", "optimizer", "kernel", "gan_type", "noise", "seed", "dataset",
                    "trainer.batch_size", "trainer.max_batches_per_epoch", "trainer.fake_mode")
# ...minus those that do not: where files live, and the fast/reference implementation switch.
NOT_FINGERPRINTED = {"model": ("impl",), "kernel": ("impl",),
                     "dataset": ("root", "fetch", "num_samples", "min_per_mode")}


def fingerprint(cfg: DictConfig) -> dict:
    out = {}
    for key in FINGERPRINT_KEYS:
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    for group, keys in NOT_FINGERPRINTED.items():
        for key in keys:
            out.get(group, {}).pop(key, None)
    # bfloat16 forwards compute other numbers; named only when not the default fp32, so the
    # fingerprints (and sweep dir hashes) of every float32 run stay what they were
    if str(OmegaConf.select(cfg, "trainer.precision", default="fp32")) != "fp32":
        out["trainer.precision"] = str(cfg.trainer.precision)
    return json.loads(json.dumps(out, default=str))


# ...plus what else a finished run's numbers depend on: its epoch budget and how its FID is
# measured (not where files live or the FID batch size). A job's identity; job dirs of a
# sweep are named by its hash (conf/train.yaml, hydra.sweep.subdir).
IDENTITY_KEYS = ("trainer.epochs", "fid")
NOT_IN_IDENTITY = {"fid": ("cache_dir", "fetch", "batch_size")}


def identity(cfg: DictConfig) -> dict:
    out = fingerprint(cfg)
    for key in IDENTITY_KEYS:
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    for group, keys in NOT_IN_IDENTITY.items():
        for key in keys:
            (out.get(group) or {}).pop(key, None)
    return json.loads(json.dumps(out, default=str))


def identity_hash(cfg: DictConfig) -> str:
    """8 hex digits of sha256 over the job's identity: equal configs give equal hashes."""
    text = json.dumps(identity(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def plain_config(cfg: DictConfig) -> dict:
    """The resolved config as plain containers (enums as strings), for checkpoints and
    summary.json: loadable without unpickling any class."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def _differing(mine: dict, theirs: dict) -> list[str]:
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


class Progress:
    """A one-line bar on a terminal; plain log lines (about ten per epoch) otherwise."""

    def __init__(self, mode: str, epochs: int, batches: int):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.epochs, self.batches = mode, epochs, batches
        self.every = max(1, batches // 10)

    def update(self, c: Counters, d_loss: float, g_loss: float, step_s: float) -> None:
        done = c.batch + 1
        text = (f"epoch {c.epoch + 1}/{self.epochs} batch {done}/{self.batches} "
                f"d_loss {d_loss:.4f} g_loss {g_loss:.4f} {step_s:.2f}s/step")
        if self.mode == "bar":
            filled = int(20 * done / self.batches)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (20 - filled)}] {text}")
            if done == self.batches:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif self.mode == "lines" and (done % self.every == 0 or done == self.batches):
            log.info(text)


class Run:
    """One training run: models, optimisers, data and counters, plus its artifacts."""

    def __init__(self, cfg: DictConfig, out_dir: Path | str):
        self.cfg = cfg
        self.dirs = artifacts.RunDir(out_dir)
        validate(cfg)
        fid.preflight(cfg.get("fid"))  # e.g. Inception weights: fail now, not after training
        artifacts.ensure_writable(self.dirs.root)
        if cfg.trainer.threads:
            torch.set_num_threads(cfg.trainer.threads)
        self.device = resolve_device(str(cfg.trainer.device))
        configure_backends(self.device, cfg.trainer.tf32, cfg.trainer.deterministic)
        select(self.device)
        self.precision = precision(self.device)
        torch.manual_seed(cfg.seed)  # Dropout and initialisation
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)  # noise, shuffles
        data = load_dataset(cfg.dataset, cfg.seed, log=log.info)
        validate(cfg, dataset_size=len(data))
        self.points = data.x.ndim == 2  # 2-D mixtures: scatter plots and mode metrics
        self.mixture = build_mixture(cfg.dataset) if self.points else None
        self.data = data.x.to(self.device)
        self.g, self.d = (m.to(self.device) for m in build_models(cfg.model))
        self.opt_d, self.opt_g = build_optimizers(cfg.optimizer, self.g, self.d)
        self.objective = build_objective(cfg.gan_type, cfg.kernel)
        self.counters = Counters()
        self.perm: torch.Tensor | None = None  # this epoch's shuffle
        self.perm_epoch: int | None = None
        self.stop_signal: int | None = None
        self.wall = time.monotonic  # the checkpoint_minutes clock (replaceable in tests)
        self.last_checkpoint = self.wall()
        self.best: dict | None = None  # the best evaluation so far (fid.best_metric)
        per_epoch = len(self.data) // cfg.trainer.batch_size  # the seed drops the last partial batch
        cap = cfg.trainer.max_batches_per_epoch
        self.batches_per_epoch = min(per_epoch, cap) if cap else per_epoch

    # ------------------------------------------------------------------ one step
    def autocast(self):
        """trainer.precision's context for the forward passes (no-op for fp32)."""
        return train_autocast(self.device, str(self.cfg.trainer.get("precision", "fp32")))

    def noise(self) -> torch.Tensor:
        return sample_noise(self.cfg.noise, self.cfg.trainer.batch_size,
                            self.cfg.model.latent_dim, self.generator, self.device)

    @torch.no_grad()
    def predict_fakes(self, z: torch.Tensor) -> torch.Tensor:
        self.g.train(str(self.cfg.trainer.fake_mode) == "train")
        with self.autocast():
            return full_precision(self.g(z))

    def d_step(self, real: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
        self.d.train()
        targets = self.objective.d_targets(real, fakes, self.counters.step)
        with self.autocast():
            output = full_precision(self.d(torch.cat([real, fakes])))
        loss = self.objective.d_loss(output, targets)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach()

    def g_step(self, z: torch.Tensor) -> torch.Tensor:
        self.g.train()
        self.d.train()  # frozen weights, but Dropout stays active as in Keras
        self.d.requires_grad_(False)
        try:
            with self.autocast():
                output = full_precision(self.d(self.g(z)))
            loss = self.objective.g_loss(output)
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.d.requires_grad_(True)
        return loss.detach()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {
            "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
            "opt_d": self.opt_d.state_dict(), "opt_g": self.opt_g.state_dict(),
            "counters": vars(self.counters).copy(), "perm": self.perm, "perm_epoch": self.perm_epoch,
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

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(t).all()) for module in (self.g, self.d)
                   for t in module.state_dict().values() if t.is_floating_point())

    def save_checkpoint(self) -> None:
        """Write last.pt atomically, never over a good checkpoint with non-finite weights."""
        if not self.weights_finite():
            raise Diverged("non-finite weights")
        artifacts.save_checkpoint(self.state_dict(), self.dirs.checkpoint)
        self.last_checkpoint = self.wall()

    def check_device(self, state: dict) -> None:
        """Refuse a checkpoint made on another device type or at another precision: CPU
        and CUDA noise generators have different states (and streams), and TF32 changes
        the numbers, so continuing would silently make a different run."""
        saved_type = state.get("device_type") or ("cuda" if "cuda" in state["rng"] else "cpu")
        saved_precision = state.get("precision", self.precision)
        if (saved_type, saved_precision) != (self.device.type, self.precision):
            raise ResumeError(
                f"{self.dirs.root} holds a checkpoint made on {saved_type} ({saved_precision}) "
                f"but this run is on {self.device.type} ({self.precision}); the noise "
                "generator's state and the arithmetic do not carry over. Fix: resume with "
                f"trainer.device={saved_type}"
                + (" trainer.tf32=true" if saved_precision == "tf32" else "")
                + ", or use another output dir (or trainer.resume=never) to start over.")

    def update_best(self, values: dict, epoch: int) -> bool:
        """Keep checkpoints/best.pt: G and D (plain tensors, like last.pt) of the evaluation
        with the best ``fid.best_metric`` so far; NaN never wins, ties keep the earlier.
        True when this evaluation became the best."""
        if "fid" not in self.cfg or str(self.cfg.fid.extractor) == "none":
            return False
        key, lower = evaluation.direction_key(self.cfg.fid)
        if key not in values or not evaluation.is_better(
                values[key], self.best["value"] if self.best else None, lower):
            return False
        metric_values = {k: v for k, v in values.items()
                         if k.endswith("_" + str(self.cfg.fid.extractor))}
        self.best = {"metric": key, "lower_is_better": lower, "value": values[key],
                     "epoch": epoch, "step": self.counters.step - 1, "values": metric_values}
        artifacts.save_checkpoint({"generator": self.g.state_dict(),
                                   "discriminator": self.d.state_dict(), "best": self.best,
                                   "fingerprint": fingerprint(self.cfg)},
                                  self.dirs.root / "checkpoints" / "best.pt")
        return True

    def best_summary(self) -> dict:
        """best_epoch, best_step, best_metric and best_<metric key> for summary.json."""
        if not self.best:
            return {}
        return {"best_epoch": self.best["epoch"], "best_step": self.best["step"],
                "best_metric": self.best["metric"],
                **{f"best_{k}": v for k, v in self.best["values"].items()}}

    def resume(self) -> bool:
        """Continue from checkpoints/last.pt when trainer.resume=auto and one exists."""
        path = self.dirs.checkpoint
        if str(self.cfg.trainer.resume) == "never" or not path.exists():
            return False
        # to CPU first: RNG states must stay CPU ByteTensors; load_state_dict moves the rest
        state = artifacts.load_checkpoint(path, map_location="cpu")
        mine = fingerprint(self.cfg)
        if state.get("fingerprint") != mine:
            changed = sorted(k for k in mine if state.get("fingerprint", {}).get(k) != mine[k])
            raise ResumeError(
                f"{self.dirs.root} holds a checkpoint of a different configuration "
                f"(differs in: {', '.join(changed)}). Fix: use another output dir, or "
                "trainer.resume=never to start over there.")
        self.check_device(state)
        if state["counters"]["epoch"] > self.cfg.trainer.epochs:
            raise ResumeError(
                f"{self.dirs.root} holds a run trained for {state['counters']['epoch']} epochs; "
                f"this config asks for trainer.epochs={self.cfg.trainer.epochs}. Fix: use "
                "another output dir, or trainer.resume=never to start over there.")
        self.load_state_dict(state)
        # rows logged after the checkpoint by the interrupted run are logged again below
        artifacts.truncate_metrics(self.dirs.metrics, self.counters.step)
        log.info("resumed from %s at epoch %d, batch %d (step %d)", path, self.counters.epoch,
                 self.counters.batch, self.counters.step)
        return True

    def write_status(self, status: str, **extra) -> dict:
        c = self.counters
        summary = {
            "status": status, "name": self.cfg.name, "gan_type": str(self.cfg.gan_type.name),
            "epochs_done": c.epoch, "batches_done": c.step, "epochs": self.cfg.trainer.epochs,
            "batches_per_epoch": self.batches_per_epoch, "wall_seconds": round(c.seconds, 3),
            "device": str(self.device), "precision": self.precision,
            "deterministic": bool(self.cfg.trainer.deterministic), "seed": self.cfg.seed,
            **memory_report(self.device), **extra,
            # the run's own record of what produced these numbers (.hydra/ is rewritten by
            # every launch into this dir): the table reads its settings from here
            "fingerprint": fingerprint(self.cfg), "identity": identity(self.cfg),
            "config": plain_config(self.cfg),
        }
        artifacts.write_json(summary, self.dirs.summary)
        return summary

    # ------------------------------------------------------------------ loop
    def _request_stop(self, signum, frame) -> None:
        self.stop_signal = signum

    def train(self) -> dict:
        cfg = self.cfg.trainer
        if not self.resume():
            artifacts.truncate_metrics(self.dirs.metrics, 0)  # trainer.resume=never: start over
        c = self.counters
        metrics = artifacts.MetricsLog(self.dirs.metrics)
        self.logger = build_logger(self.cfg.get("logger"), self.dirs.root)
        progress = Progress(str(cfg.progress), cfg.epochs, self.batches_per_epoch)
        self.step_times: list[float] = []
        self.write_status("running", pid=os.getpid(), host=socket.gethostname())
        log.info("training %s: %d epochs x %d batches of %d on %s (%d torch threads)",
                 self.cfg.name, cfg.epochs, self.batches_per_epoch, cfg.batch_size, self.device,
                 torch.get_num_threads())
        handlers = self._install_signal_handlers()
        try:
            self._loop(metrics, progress)
        except Diverged as exc:
            log.warning("%s diverged: %s; last good checkpoint and samples kept", self.cfg.name, exc)
            return self.write_status("diverged", error=str(exc), diverged_at=vars(c).copy(),
                                     last_sample=self.last_sample(), objective=math.inf,
                                     **self.best_summary())
        except Interrupted as exc:
            self.write_status("interrupted", error=str(exc), last_sample=self.last_sample())
            raise
        finally:
            metrics.close()
            self.logger.close()
            self._restore_signal_handlers(handlers)
        self.save_checkpoint()
        # The final evaluation (minutes for an Inception FID) stops at once on SIGTERM or
        # Ctrl-C; the checkpoint above is final, so a relaunch only evaluates again.
        handlers = self._install_signal_handlers(self._stop_now)
        try:
            with isolated_rng(self.device):
                final = self.final_samples()
                results = self.evaluate()
        except Interrupted as exc:
            self.write_status("interrupted", error=f"{exc} during the final evaluation",
                              last_sample=self.last_sample())
            raise
        finally:
            self._restore_signal_handlers(handlers)
        if self.update_best(results, c.epoch - 1):  # the final G competes for best.pt too
            self.save_checkpoint()  # last.pt records that best, for a later longer resume
        return self.write_status(
            "ok", **results, **self.best_summary(), last_sample=self.last_sample(),
            final_sample=str(final.relative_to(self.dirs.root)),
            seconds_per_step_median=(statistics.median(self.step_times)
                                     if self.step_times else None))

    def _checkpoint_due(self, batch: int) -> bool:
        """At every epoch start (the previous epoch's end), every ``checkpoint_every``
        batches and once ``checkpoint_minutes`` passed since the last one; SIGTERM/SIGINT
        and the end of training always write one. Sample grids no longer force one."""
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
            clock.restart()  # epoch-end FID is not training time
            while c.batch < self.batches_per_epoch:
                if self.stop_signal is not None:
                    self._account(clock)
                    self.save_checkpoint()
                    raise Interrupted(self.stop_signal)
                if self._checkpoint_due(c.batch):
                    self._account(clock)  # the checkpoint reads the weights: a sync anyway
                    self.save_checkpoint()  # a clean batch boundary: exact resume point
                    self.write_status("running", pid=os.getpid(), host=socket.gethostname())
                fakes = self.predict_fakes(self.noise())
                if c.batch % cfg.sample_every == 0:
                    if not bool(torch.isfinite(fakes).all()):
                        raise Diverged(f"non-finite generator output at epoch {c.epoch}, "
                                       f"batch {c.batch}")
                    with isolated_rng(self.device):
                        picture = self.visualize(fakes, self.dirs.sample(c.epoch, c.batch))
                    self.logger.log_grid("samples", artifacts.read_grid(picture), c.step)
                index = self.perm[c.batch * cfg.batch_size:(c.batch + 1) * cfg.batch_size]
                lr_d, lr_g, eps = (self.opt_d.current_lr(), self.opt_g.current_lr(),
                                   self.objective.eps(c.step))
                d_loss = self.d_step(self.data[index], fakes)
                g_loss = self.g_step(self.noise())
                clock.tick()
                last = c.batch == self.batches_per_epoch - 1
                if c.batch % cfg.log_every == 0 or last:
                    # the step's only read-back: both losses in one transfer
                    d_value, g_value = torch.stack([d_loss, g_loss]).tolist()
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
            if not self.points:
                with isolated_rng(self.device):  # evaluation never draws from training streams
                    row = fid.epoch_metrics(self)
                if row is not None:
                    metrics.write(row)  # every metric every fid.every_epochs epochs
                    self.update_best(row, row["epoch"])

    @staticmethod
    def _stop_now(signum, frame) -> None:
        raise Interrupted(signum)

    def _install_signal_handlers(self, handler=None) -> dict:
        """SIGTERM (cluster pre-emption, kill) and SIGINT stop at the next batch boundary
        (``handler``: otherwise)."""
        self.stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, handler or self._request_stop)
                for sig in (signal.SIGTERM, signal.SIGINT)}

    @staticmethod
    def _restore_signal_handlers(handlers: dict) -> None:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)

    def last_sample(self) -> str | None:
        grids = sorted(p for p in self.dirs.samples.glob("[0-9]*_[0-9]*.png"))
        return str(grids[-1].relative_to(self.dirs.root)) if grids else None

    def visualize(self, fakes: torch.Tensor, path: Path) -> Path:
        """A grid of images, or real-vs-generated points over the kernel potential."""
        if not self.points:
            return artifacts.save_grid(fakes, path)
        kernel = getattr(self.objective, "kernel", None)
        return scatter(self.data[:1000], fakes, path, self.mixture, kernel, self.counters.step,
                       f"{self.cfg.name}  step {self.counters.step}")

    def generate(self, n: int) -> torch.Tensor:
        """n samples from the final G in inference mode, on noise fixed by the run's seed."""
        return sample_generator(self.g, self.cfg.noise, self.cfg.model.latent_dim, n,
                                self.cfg.seed + 1, self.device, self.cfg.trainer.batch_size)

    def final_samples(self) -> Path:
        n = self.cfg.dataset.num_samples if self.points else self.cfg.trainer.batch_size
        return self.visualize(self.generate(n), self.dirs.final_sample)

    def evaluate(self) -> dict:
        """Headline numbers of the trained G: FID for images, mode metrics for 2-D mixtures."""
        if self.points:
            return mode_metrics(self.generate(self.cfg.dataset.num_samples), self.mixture,
                                self.cfg.dataset.min_per_mode)
        result = fid.final_metrics(self)
        details = result.get("fid", {})
        if "floor" in details:  # the real-data floor of the same metric, for the table
            result[f"floor_{details['extractor']}"] = details["floor"]
        for key, value in details.get("floors", {}).items():  # floor_kid_lenet, ...
            if not key.startswith("fid_"):
                result[f"floor_{key}"] = value
        return result


def finished_summary(cfg: DictConfig, out_dir: Path) -> dict | None:
    """The summary of a run that already completed exactly this config in ``out_dir``, else
    None (train or resume). A dir holding another configuration's run is refused (ResumeError)
    before anything is written: its numbers must never be reported for this config."""
    dirs = artifacts.RunDir(out_dir)
    if str(cfg.trainer.resume) == "never" or not dirs.summary.exists():
        return None
    try:
        summary = json.loads(dirs.summary.read_text())
    except (OSError, ValueError):
        return None
    theirs = summary.get("fingerprint")
    if theirs is None and dirs.checkpoint.exists():  # a summary from before runs recorded it
        theirs = artifacts.load_checkpoint(dirs.checkpoint).get("fingerprint")
    if theirs is None:
        return None  # nothing to compare: train (a checkpoint is still checked by resume)
    changed = _differing(fingerprint(cfg), theirs)
    if changed and (summary.get("status") != "failed" or dirs.checkpoint.exists()):
        raise ResumeError(
            f"{out_dir} holds a run of a different configuration (differs in: "
            f"{', '.join(changed)}). Fix: use another output dir (a sweep's default job dirs "
            "are named by a hash of the config), or trainer.resume=never to start over there.")
    if summary.get("status") != "ok" or changed:
        return None
    if summary.get("epochs_done", -1) > cfg.trainer.epochs:
        raise ResumeError(
            f"{out_dir} holds a run trained for {summary['epochs_done']} epochs; this config "
            f"asks for trainer.epochs={cfg.trainer.epochs}. Fix: use another output dir, or "
            "trainer.resume=never to start over there.")
    same = summary.get("identity") == identity(cfg)
    # same training, other FID settings or more epochs: resume (or only evaluate) below
    return summary if same and summary.get("epochs_done", -1) >= cfg.trainer.epochs else None


def run(cfg: DictConfig, out_dir: Path | str) -> dict:
    """Train one configuration into ``out_dir`` (resuming or skipping as it finds it), holding
    the dir's lock: a second process on the same dir refuses, naming the holder."""
    out_dir = Path(out_dir)
    artifacts.ensure_writable(out_dir)
    with artifacts.RunLock(out_dir):
        summary = finished_summary(cfg, out_dir)
        if summary is not None:
            log.info("%s already finished this config (summary.json status ok); skipping", out_dir)
            return summary
        return Run(cfg, out_dir).train()
