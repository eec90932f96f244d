"""The seed's training loop (seed-experiment.md, "Training loop"), one batch at a time:

1. z ~ noise; fakes = G(z) in inference mode (Keras ``G.predict``).
2. every ``sample_every`` batches: checkpoint, and a grid of the fakes ``EEEE_BBBB.png``.
3. D step: one update on cat(real, fakes) against the objective's targets.
4. G step: new z, one update of G through D with D's weights frozen but its Dropout active
   (Keras ``train_on_batch`` of the combined model runs in the training phase).
5. log epoch, batch, losses, eps, learning rates.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gansweep import artifacts, fid
from gansweep.data import load_mnist
from gansweep.models import build_models
from gansweep.objectives import build_objective
from gansweep.optim import build_optimizers
from gansweep.validate import validate

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def sample_noise(cfg: DictConfig, n: int, dim: int, generator: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    if str(cfg.dist) == "uniform":
        u = torch.rand(n, dim, generator=generator, device=device)
        return u * (cfg.high - cfg.low) + cfg.low
    return torch.randn(n, dim, generator=generator, device=device) * cfg.std


@dataclass
class Counters:
    epoch: int = 0  # current epoch
    batch: int = 0  # next batch to train within the epoch
    step: int = 0  # batches trained in total (the eps schedule's t)


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
        if cfg.trainer.threads:
            torch.set_num_threads(cfg.trainer.threads)
        self.device = resolve_device(str(cfg.trainer.device))
        torch.manual_seed(cfg.seed)  # Dropout and initialisation
        self.generator = torch.Generator(self.device).manual_seed(cfg.seed)  # noise, shuffles
        data = load_mnist(cfg.dataset.root, "train", cfg.dataset.limit, cfg.dataset.fetch,
                          log=log.info)
        validate(cfg, dataset_size=len(data))
        self.data = data.x.to(self.device)
        self.g, self.d = (m.to(self.device) for m in build_models(cfg.model))
        self.opt_d, self.opt_g = build_optimizers(cfg.optimizer, self.g, self.d)
        self.objective = build_objective(cfg.gan_type, cfg.kernel)
        self.counters = Counters()
        self.perm: torch.Tensor | None = None
        per_epoch = len(self.data) // cfg.trainer.batch_size  # the seed drops the last partial batch
        cap = cfg.trainer.max_batches_per_epoch
        self.batches_per_epoch = min(per_epoch, cap) if cap else per_epoch

    # ------------------------------------------------------------------ one step
    def noise(self) -> torch.Tensor:
        return sample_noise(self.cfg.noise, self.cfg.trainer.batch_size,
                            self.cfg.model.latent_dim, self.generator, self.device)

    @torch.no_grad()
    def predict_fakes(self, z: torch.Tensor) -> torch.Tensor:
        self.g.train(str(self.cfg.trainer.fake_mode) == "train")
        return self.g(z)

    def d_step(self, real: torch.Tensor, fakes: torch.Tensor) -> torch.Tensor:
        self.d.train()
        targets = self.objective.d_targets(real, fakes, self.counters.step)
        loss = self.objective.d_loss(self.d(torch.cat([real, fakes])), targets)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach()

    def g_step(self, z: torch.Tensor) -> torch.Tensor:
        self.g.train()
        self.d.train()  # frozen weights, but Dropout stays active as in Keras
        self.d.requires_grad_(False)
        try:
            loss = self.objective.g_loss(self.d(self.g(z)))
            self.opt_g.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_g.step()
        finally:
            self.d.requires_grad_(True)
        return loss.detach()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        c = self.counters
        state = {
            "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
            "opt_d": self.opt_d.state_dict(), "opt_g": self.opt_g.state_dict(),
            "counters": vars(c).copy(), "perm": self.perm,
            "rng": {"torch": torch.get_rng_state(), "noise": self.generator.get_state()},
            "config": OmegaConf.to_container(self.cfg, resolve=True),
        }
        if self.device.type == "cuda":
            state["rng"]["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_checkpoint(self) -> None:
        artifacts.save_checkpoint(self.state_dict(), self.dirs.checkpoint)

    # ------------------------------------------------------------------ loop
    def train(self) -> dict:
        cfg, c = self.cfg.trainer, self.counters
        metrics = artifacts.MetricsLog(self.dirs.metrics)
        progress = Progress(str(cfg.progress), cfg.epochs, self.batches_per_epoch)
        step_times, last_sample = [], None
        start = time.perf_counter()
        log.info("training %s: %d epochs x %d batches of %d on %s", self.cfg.name, cfg.epochs,
                 self.batches_per_epoch, cfg.batch_size, self.device)
        try:
            while c.epoch < cfg.epochs:
                if c.batch == 0:
                    self.perm = torch.randperm(len(self.data), generator=self.generator,
                                               device=self.device)
                while c.batch < self.batches_per_epoch:
                    t0 = time.perf_counter()
                    sampling = c.batch % cfg.sample_every == 0
                    if sampling:
                        self.save_checkpoint()
                    fakes = self.predict_fakes(self.noise())
                    if sampling:
                        last_sample = artifacts.save_grid(fakes, self.dirs.sample(c.epoch, c.batch))
                    index = self.perm[c.batch * cfg.batch_size:(c.batch + 1) * cfg.batch_size]
                    lr_d, lr_g, eps = (self.opt_d.current_lr(), self.opt_g.current_lr(),
                                       self.objective.eps(c.step))
                    d_loss = self.d_step(self.data[index], fakes)
                    g_loss = self.g_step(self.noise())
                    step_times.append(time.perf_counter() - t0)
                    if c.batch % cfg.log_every == 0 or c.batch == self.batches_per_epoch - 1:
                        d_value, g_value = d_loss.item(), g_loss.item()
                        metrics.write({
                            "epoch": c.epoch, "batch": c.batch, "step": c.step,
                            "d_loss": d_value, "g_loss": g_value, "eps": eps,
                            "lr_d": lr_d, "lr_g": lr_g,
                            "seconds": round(time.perf_counter() - start, 4)})
                        progress.update(c, d_value, g_value, step_times[-1])
                    c.batch += 1
                    c.step += 1
                c.epoch, c.batch = c.epoch + 1, 0
                if (row := fid.epoch_metrics(self)) is not None:
                    metrics.write(row)  # FID every fid.every_epochs epochs
        finally:
            metrics.close()
        self.save_checkpoint()
        final = self.final_samples()
        wall = time.perf_counter() - start
        return {
            "status": "ok", "name": self.cfg.name, "gan_type": str(self.cfg.gan_type.name),
            "epochs_done": c.epoch, "batches_done": c.step,
            "batches_per_epoch": self.batches_per_epoch, "wall_seconds": round(wall, 3),
            "seconds_per_step_median": statistics.median(step_times) if step_times else None,
            "last_sample": str(last_sample.relative_to(self.dirs.root)) if last_sample else None,
            "final_sample": str(final.relative_to(self.dirs.root)),
            "device": str(self.device), "seed": self.cfg.seed,
            **fid.final_metrics(self),  # fid_<extractor>, objective, fid details
        }

    @torch.no_grad()
    def final_samples(self) -> Path:
        """A grid from the final G in inference mode, on noise fixed by the run's seed."""
        generator = torch.Generator(self.device).manual_seed(self.cfg.seed + 1)
        z = sample_noise(self.cfg.noise, self.cfg.trainer.batch_size, self.cfg.model.latent_dim,
                         generator, self.device)
        self.g.eval()
        return artifacts.save_grid(self.g(z), self.dirs.final_sample)


def run(cfg: DictConfig, out_dir: Path | str) -> dict:
    """Train one configuration into ``out_dir``; returns (and writes) its summary."""
    out_dir = Path(out_dir)
    summary = Run(cfg, out_dir).train()
    artifacts.write_json(summary, artifacts.RunDir(out_dir).summary)
    return summary
