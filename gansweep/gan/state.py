"""What a run *is*: its networks, optimisers, objective, counters and random streams, as a
value that several can share a process with (``RunState``); what drives it (the loop, its
dir, checkpoints, summary, loggers, signals) is ``gansweep.runs.trainer.Run``.

A run draws every random number from generators it owns (``Streams``), never from torch's
global RNG, so runs interleaved in one process compute what each computes alone. The streams
are the ones the seed's Keras script and every earlier release of this harness drew:

- ``model``: the initial weights, then (on a CPU) the Dropout masks: one stream, seeded by
  the run's seed, as the global RNG after ``torch.manual_seed(seed)`` was (a continuation,
  not two streams: the masks are bit-identical to a run of an earlier release only so);
- ``dropout``: the Dropout masks; on a CPU the ``model`` stream itself, on CUDA a CUDA
  generator seeded by the seed (a generator draws on its own device);
- ``noise``: data order (one shuffle per epoch) and G's input z, on the run's device;
- evaluation and pictures draw from generators seeded by seed + an offset, made afresh for
  each evaluation (``gansweep.gan.noise.sample_generator``).

The process-wide settings a run depends on (torch threads, TF32, deterministic kernels, the
current CUDA device) are set once per process by whoever drives the runs
(``gansweep.device.configure_process``), never here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig

from gansweep.device import train_autocast
from gansweep.gan.models import use_generator
from gansweep.gan.step import Parts, train_step



# last.pt's "streams": 2 since a run's Dropout masks come from its own generator
# (gansweep.gan.state.Streams): the masks of earlier releases on a CPU, another stream on CUDA
STREAMS_VERSION = 2


@dataclass
class Counters:
    epoch: int = 0  # current epoch
    batch: int = 0  # next batch to train within the epoch
    step: int = 0  # batches trained in total (the eps schedule's t)
    seconds: float = 0.0  # training wall time so far, summed over resumes


@dataclass
class Streams:
    model: torch.Generator  # initial weights, then the Dropout masks on a CPU
    dropout: torch.Generator  # the model stream on a CPU; a CUDA generator on CUDA
    noise: torch.Generator  # data order and z, on the run's device

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> "Streams":
        model = torch.Generator().manual_seed(seed)
        dropout = (torch.Generator(device).manual_seed(seed) if device.type == "cuda"
                   else model)
        return cls(model, dropout, torch.Generator(device).manual_seed(seed))

    def state_dict(self) -> dict:
        # the keys earlier releases used for the global RNG states ("torch", "cuda")
        state = {"torch": self.model.get_state(), "noise": self.noise.get_state()}
        if self.dropout is not self.model:
            state["cuda"] = self.dropout.get_state()
        return state

    def load_state_dict(self, state: dict) -> None:
        # RNG states are CPU ByteTensors whatever the device (set_state refuses others)
        rng = {name: value.cpu() for name, value in state.items()}
        self.model.set_state(rng["torch"])
        self.noise.set_state(rng["noise"])
        if self.dropout is not self.model and "cuda" in rng:
            self.dropout.set_state(rng["cuda"])


def build_gan(model_cfg: DictConfig, generator: torch.Generator):
    """The ``model`` config's GAN, its initial weights drawn from ``generator``.

    A class whose constructor takes ``generator`` (the shipped ``DCGAN`` and ``MLPGAN``) draws
    from it directly. A user's class that draws from torch's global RNG is built with the
    global RNG set to the generator's state for the duration (``fork_rng``: restored after)
    and the generator advanced by what it drew: the same weights, but not safe while another
    thread of the process draws (the one place a run touches the global RNG)."""
    target = get_class(str(model_cfg._target_))
    if "generator" in inspect.signature(target).parameters:
        return instantiate(model_cfg, generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.set_state(generator.get_state())
        gan = instantiate(model_cfg)
        generator.set_state(torch.random.default_generator.get_state())
    return gan


def check_shape(gan, data: torch.Tensor, cfg: DictConfig) -> None:
    """ValueError, in one line with the fix, where the model says what shape its samples
    have (``GAN.sample_shape``) and the dataset's are of another."""
    want = getattr(gan, "sample_shape", None)
    have = tuple(data.shape[1:])
    if want is None or have == tuple(want):
        return
    shown = ["x".join(map(str, shape)) for shape in (have, want)]
    raise ValueError(
        f"dataset {cfg.dataset.get('name')} has samples of shape {shown[0]}, and model "
        f"{cfg.model.get('name', cfg.model.get('_target_'))} makes and takes {shown[1]}. Fix: "
        "a dataset of that shape (dataset=image_folder: dataset.channels and dataset.size), "
        "or a model for this one")


class RunState:
    """One run's training state as a value: build it from a config, step it, save and load it.

    ``train_batch()`` trains the next batch and returns what the loop logs; ``advance()``
    moves the counters past it (after the driver has logged it, so a run stopped on a
    non-finite value records the batch it stopped at). Nothing here reads the host clock,
    the run dir or a process-wide setting."""

    def __init__(self, cfg: DictConfig, device: torch.device, data: torch.Tensor):
        self.cfg, self.device = cfg, device
        self.streams = Streams.seeded(int(cfg.seed), device)
        self.data = data.to(device)
        gan = build_gan(cfg.model, self.streams.model)
        check_shape(gan, data, cfg)
        self.g, self.d, self.latent_dim = (gan.generator.to(device),
                                           gan.discriminator.to(device), gan.latent_dim)
        use_generator(self.g, self.streams.dropout)
        use_generator(self.d, self.streams.dropout)
        self.noise_source = instantiate(cfg.noise)
        self.opt_d, self.opt_g = (instantiate(cfg.optimizer.d)(self.d.parameters()),
                                  instantiate(cfg.optimizer.g)(self.g.parameters()))
        self.objective = instantiate(cfg.gan_type)
        self.parts = Parts(self.g, self.d, self.opt_d, self.opt_g, self.objective,
                           str(cfg.trainer.fake_mode))
        precision_name = str(cfg.trainer.get("precision", "fp32"))  # bf16: autocast forwards
        if precision_name != "fp32":  # fp32 keeps Parts' no-op context: nothing per step
            train_autocast(device, precision_name)  # an unknown name fails here, once
            self.parts.autocast = lambda: train_autocast(device, precision_name)
        self.counters = Counters()
        self.perm: torch.Tensor | None = None  # this epoch's shuffle
        self.perm_epoch: int | None = None
        per_epoch = len(self.data) // cfg.trainer.batch_size  # the seed drops the last partial batch
        cap = cfg.trainer.max_batches_per_epoch
        self.batches_per_epoch = min(per_epoch, cap) if cap else per_epoch

    @property
    def finished(self) -> bool:
        return self.counters.epoch >= self.cfg.trainer.epochs

    def noise(self) -> torch.Tensor:
        return self.noise_source(self.cfg.trainer.batch_size, self.latent_dim,
                                 self.streams.noise, self.device)

    def batch_index(self) -> torch.Tensor:
        """The data rows of the next batch (a fresh shuffle at each epoch's first batch,
        kept across resumes)."""
        c, size = self.counters, self.cfg.trainer.batch_size
        if self.perm_epoch != c.epoch:
            self.perm = torch.randperm(len(self.data), generator=self.streams.noise,
                                       device=self.device)
            self.perm_epoch = c.epoch
        return self.perm[c.batch * size:(c.batch + 1) * size]

    def train_batch(self) -> dict:
        """One training step on the next batch: the losses (0-d tensors on the device), the
        fakes it trained D on, and the learning rates and eps the step used."""
        c = self.counters
        index = self.batch_index()
        # logged values are those the step uses: read before it updates them
        lr_d, lr_g, eps = (self.opt_d.current_lr(), self.opt_g.current_lr(),
                           self.objective.eps(c.step))
        d_loss, g_loss, fakes = train_step(self.parts, self.data[index], self.noise, c.step)
        return {"d_loss": d_loss, "g_loss": g_loss, "fakes": fakes, "lr_d": lr_d,
                "lr_g": lr_g, "eps": eps}

    def advance(self) -> bool:
        """Past the batch just trained; True when that batch ended an epoch."""
        c = self.counters
        c.batch += 1
        c.step += 1
        if c.batch < self.batches_per_epoch:
            return False
        c.epoch, c.batch = c.epoch + 1, 0
        return True

    def state_dict(self) -> dict:
        return {"generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
                "opt_d": self.opt_d.state_dict(), "opt_g": self.opt_g.state_dict(),
                "counters": vars(self.counters).copy(), "perm": self.perm,
                "perm_epoch": self.perm_epoch, "rng": self.streams.state_dict(),
                "streams": STREAMS_VERSION}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["generator"])
        self.d.load_state_dict(state["discriminator"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.counters = Counters(**state["counters"])
        perm = state["perm"]
        self.perm = perm.to(self.device) if perm is not None else None
        self.perm_epoch = state["perm_epoch"]
        self.streams.load_state_dict(state["rng"])
