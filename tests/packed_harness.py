"""N runs trained alone (``gansweep.gan.step.train_step``, each on its own generators, as the
trainer does) and the same N runs trained packed (``gansweep.packed``), with snapshots of
everything a step changes, for tests/test_packed_math.py.

A run here is a seed preset's hyperparameters (conf/experiment/seed_*.yaml: the learning
rates and decays of D and G, the kernel's eps0), a seed, a kernel half-life and a loss
family. The half-lives are a few batches (the presets' 5000 would leave eps unchanged over
the tests' ten steps), so the eps schedule is exercised.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from omegaconf import OmegaConf

from gansweep.gan.kernels import PlummerKernel
from gansweep.gan.models import DCGAN, MLPGAN, use_generator
from gansweep.gan.noise import Noise
from gansweep.gan.objectives import CoulombGAN, StandardGAN
from gansweep.gan.optim import KerasAdam
from gansweep.packed.models import pack
from gansweep.packed.objectives import packed_objective
from gansweep.packed.optim import PackedKerasAdam
from gansweep.packed.streams import PackedStreams, batch_of
from gansweep.packed.step import Pack, packed_train_step
from gansweep.gan.step import Parts, train_step

from tests.helpers import REPO

KERNEL_EPS = float(OmegaConf.load(REPO / "conf" / "kernel" / "plummer.yaml").eps)
ADAM = OmegaConf.load(REPO / "conf" / "optimizer" / "keras_adam.yaml")
KERAS = OmegaConf.load(REPO / "conf" / "keras" / "2.1.3.yaml")  # the default release


def seed_presets() -> list[dict]:
    """The seven seed presets' hyperparameters, read from their YAMLs."""
    presets = []
    for path in sorted((REPO / "conf" / "experiment").glob("seed_*.yaml")):
        cfg = OmegaConf.load(path)
        presets.append({"name": path.stem, "d": dict(cfg.optimizer.d), "g": dict(cfg.optimizer.g),
                        "eps": float(cfg.get("kernel", {}).get("eps", KERNEL_EPS))})
    return presets


@dataclass
class RunSpec:
    preset: dict
    seed: int
    half_life: float
    family: str  # standard | coulomb
    loss: str = "keras_bce"


def specs(n: int, family: str, loss: str = "keras_bce") -> list[RunSpec]:
    """n runs: the presets in turn, mixed seeds, half-lives of 2 to 6 batches."""
    presets = seed_presets()
    return [RunSpec(presets[i % len(presets)], seed=(7 * i + 3) % 23, half_life=2.0 + i % 5,
                    family=family, loss=loss) for i in range(n)]


def optimizer(params, settings: dict) -> KerasAdam:
    return KerasAdam(params, lr=settings["lr"], beta_1=settings["beta_1"],
                     beta_2=float(ADAM.d.beta_2), epsilon=float(KERAS.adam_epsilon),
                     decay=settings["decay"])


class Single:
    """One run alone, as ``gansweep.runs.trainer.Run`` steps it: a model generator for the
    initial weights and the Dropout masks, a noise generator for the data order (a new
    ``randperm`` every epoch) and z."""

    def __init__(self, spec: RunSpec, model: str, dtype: torch.dtype, batch: int,
                 arch: dict | None = None, fake_mode: str = "eval"):
        self.spec, self.dtype, self.batch = spec, dtype, batch
        self.model_generator = torch.Generator().manual_seed(spec.seed)
        arch = arch or {}
        if model == "dcgan":
            self.gan = DCGAN(impl="reference", generator=self.model_generator, **arch)
        elif model == "dcgan_fast":
            self.gan = DCGAN(impl="fast", generator=self.model_generator, **arch)
        else:
            self.gan = MLPGAN(generator=self.model_generator, **arch)
        self.gan.to(dtype)
        use_generator(self.gan.discriminator, self.model_generator)
        self.noise_generator = torch.Generator().manual_seed(spec.seed)
        self.noise = Noise()
        self.opt_d = optimizer(self.gan.discriminator.parameters(), spec.preset["d"])
        self.opt_g = optimizer(self.gan.generator.parameters(), spec.preset["g"])
        if spec.family == "coulomb":
            self.objective = CoulombGAN(PlummerKernel(eps=spec.preset["eps"],
                                                      eps_half_life=spec.half_life))
        else:
            self.objective = StandardGAN(loss=spec.loss)
        self.parts = Parts(self.gan.generator, self.gan.discriminator, self.opt_d, self.opt_g,
                           self.objective, fake_mode)
        self.perm: torch.Tensor | None = None

    def z(self) -> torch.Tensor:
        return self.noise(self.batch, self.gan.latent_dim, self.noise_generator,
                          torch.device("cpu")).to(self.dtype)

    def step(self, data: torch.Tensor, step: int):
        per_epoch = len(data) // self.batch
        if step % per_epoch == 0:
            self.perm = torch.randperm(len(data), generator=self.noise_generator)
        b = step % per_epoch
        real = data[self.perm[b * self.batch:(b + 1) * self.batch]]
        return train_step(self.parts, real, self.z, step)

    def snapshot(self) -> dict:
        return {"generator": clone(self.gan.generator.state_dict()),
                "discriminator": clone(self.gan.discriminator.state_dict()),
                "grad_generator": {k: p.grad.clone() for k, p in
                                   self.gan.generator.named_parameters()},
                "grad_discriminator": {k: p.grad.clone() for k, p in
                                       self.gan.discriminator.named_parameters()},
                "opt_d": copy.deepcopy(self.opt_d.state_dict()),
                "opt_g": copy.deepcopy(self.opt_g.state_dict())}


def clone(state: dict) -> dict:
    return {k: v.clone() for k, v in state.items()}


class Packed:
    """The same runs, packed: built from fresh single-run objects of the same seeds (the
    pack's initial weights are theirs), their generators driving the pack's streams."""

    def __init__(self, runs: list[RunSpec], model: str, dtype: torch.dtype, batch: int,
                 conv_impl: str = "grouped", arch: dict | None = None, fake_mode: str = "eval",
                 singles: list[Single] | None = None):
        """``singles``: pack these runs as they are now (their weights, optimiser state and
        generators), instead of fresh ones of ``runs``."""
        self.singles = singles or [Single(spec, model, dtype, batch, arch, fake_mode)
                                   for spec in runs]
        self.dtype, self.batch = dtype, batch
        gans = [s.gan for s in self.singles]
        self.model = pack(gans, conv_impl)
        self.opt_d = PackedKerasAdam.from_single(list(self.model.discriminator.parameters()),
                                                 [s.opt_d for s in self.singles])
        self.opt_g = PackedKerasAdam.from_single(list(self.model.generator.parameters()),
                                                 [s.opt_g for s in self.singles])
        self.objective = packed_objective([s.objective for s in self.singles])
        self.pack = Pack(self.model.generator, self.model.discriminator, self.opt_d, self.opt_g,
                         self.objective, fake_mode)
        dropout = getattr(gans[0].discriminator, "dropout", None)
        self.streams = PackedStreams([s.noise_generator for s in self.singles],
                                     [s.model_generator for s in self.singles], Noise(),
                                     self.model.latent_dim, batch,
                                     dropout=dropout.p if dropout is not None else None)
        self.perms: torch.Tensor | None = None

    def draws(self, data: torch.Tensor, step: int):
        """The step's inputs from the runs' streams, in their order."""
        per_epoch = len(data) // self.batch
        if step % per_epoch == 0:
            self.perms = self.streams.permutations(len(data))
        real = batch_of(data, self.perms, step % per_epoch, self.batch)
        z_fake, z_g = self.streams.z().to(self.dtype), self.streams.z().to(self.dtype)
        return real, z_fake, z_g, self.streams.masks(self.dtype)

    def step(self, data: torch.Tensor, step: int, run_steps: torch.Tensor | None = None):
        """``run_steps``: each run's own step count where they differ (runs continued from
        different points), else ``step`` for all."""
        return packed_train_step(self.pack, *self.draws(data, step),
                                 step if run_steps is None else run_steps)

    def release_runs(self) -> None:
        """Drop the single-run networks and optimisers the pack was built from (their
        generators stay: they drive the pack's streams), to halve the memory of a big pack."""
        for single in self.singles:
            single.gan = single.opt_d = single.opt_g = single.parts = None

    def snapshot(self, index: int) -> dict:
        """Run ``index``'s part of the pack in the single-run format (what ``unstack`` writes
        into a run: the packed state_dicts share the single ones' keys)."""
        found = {}
        for net in ("generator", "discriminator"):
            module = getattr(self.model, net)
            found[net] = {k: v[index].clone() for k, v in module.state_dict().items()}
            found[f"grad_{net}"] = {k: p.grad[index].clone() for k, p in module.named_parameters()}
        return {**found, "opt_d": self.opt_d.single_state_dict(index),
                "opt_g": self.opt_g.single_state_dict(index)}


def fake_images(n: int, dtype: torch.dtype, seed: int = 9) -> torch.Tensor:
    """MNIST-shaped data in [-1, 1]: mostly background with bright strokes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    return torch.where(x > 0.8, x * 2 - 1, torch.full_like(x, -1.0)).to(dtype)


def fake_points(n: int, dtype: torch.dtype, seed: int = 9) -> torch.Tensor:
    """2-D points on a ring of 8 modes, as the ring8 mixture."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(8, (n,), generator=g) * (2 * torch.pi / 8)
    centres = torch.stack([angle.cos(), angle.sin()], dim=1) * 2
    return (centres + 0.02 * torch.randn(n, 2, generator=g)).to(dtype)


def lockstep(runs: list[RunSpec], model: str, dtype: torch.dtype, batch: int,
             data: torch.Tensor, steps: int, conv_impl: str = "grouped", **options):
    """The runs alone and packed, stepped side by side: yields (steps done, the singles,
    the pack, the singles' step outputs, the pack's) after every step, so a test compares
    at the step counts it wants and keeps nothing else (a DCGAN run's state is 125 MB in
    float32). ``options``: ``arch``, ``fake_mode``."""
    singles = [Single(spec, model, dtype, batch, **options) for spec in runs]
    packed = Packed(runs, model, dtype, batch, conv_impl, **options)
    packed.release_runs()
    for step in range(steps):
        together = packed.step(data, step)
        apart = [single.step(data, step) for single in singles]
        yield step + 1, singles, packed, apart, together


# ----------------------------------------------------------------------------- comparing
def quantities(snapshot: dict) -> dict[str, dict[str, torch.Tensor]]:
    """A snapshot's floating-point tensors by kind: each network's parameters, BatchNorm
    buffers, gradients and Adam m and v (the optimisers' state in their parameter order)."""
    found = {}
    for net in ("generator", "discriminator"):
        grads = snapshot[f"grad_{net}"]
        state = snapshot[net]
        found[f"{net} parameters"] = {k: v for k, v in state.items() if k in grads}
        found[f"{net} BatchNorm buffers"] = {k: v for k, v in state.items()
                                             if k not in grads and v.is_floating_point()}
        found[f"{net} gradients"] = grads
    for key, net in (("opt_d", "discriminator"), ("opt_g", "generator")):
        names = list(snapshot[f"grad_{net}"])
        state = snapshot[key]["state"]
        for moment in ("m", "v"):
            found[f"{net} Adam {moment}"] = {names[k]: s[moment] for k, s in state.items()}
    return {kind: tensors for kind, tensors in found.items() if tensors}


def exact_parts(snapshot: dict) -> dict:
    """What must agree exactly: integer buffers (BatchNorm step counts), the optimisers'
    update counts and hyperparameters."""
    ints = {f"{net}.{k}": v.tolist() for net in ("generator", "discriminator")
            for k, v in snapshot[net].items() if not v.is_floating_point()}
    for key in ("opt_d", "opt_g"):
        ints[f"{key}.iterations"] = snapshot[key]["iterations"]
        ints[f"{key}.param_groups"] = snapshot[key]["param_groups"]
        ints[f"{key}.state keys"] = sorted(snapshot[key]["state"])
    return ints


def elementwise_errors(expected: dict, actual: dict) -> dict[str, tuple[float, str]]:
    """Per kind: the largest |actual - expected| over all its tensors, relative to the
    largest |expected| of that kind in that network (a tensor whose exact value is zero,
    such as the gradient of a bias that a BatchNorm follows, holds only rounding noise and
    is judged on the network's scale), and the tensor where it occurs."""
    want, got = quantities(expected), quantities(actual)
    assert want.keys() == got.keys()
    errors = {}
    for kind, tensors in want.items():
        scale = max(t.double().abs().max().item() for t in tensors.values())
        worst = max(((got[kind][name].double() - t.double()).abs().max().item(), name)
                    for name, t in tensors.items())
        errors[kind] = (worst[0] / scale if scale else worst[0], worst[1])
    return errors


def median_errors(expected: dict, actual: dict) -> dict[str, float]:
    """Per kind: the median of |actual - expected| over its elements (every k-th element of
    a tensor of more than 2^14, a fixed sample), relative to the largest |expected| of that
    kind: immune to a few elements far off."""
    want, got = quantities(expected), quantities(actual)

    def sample(t: torch.Tensor) -> torch.Tensor:
        flat = t.flatten()
        return flat[::max(1, flat.numel() // 2**14)].double()

    errors = {}
    for kind, tensors in want.items():
        scale = max(t.abs().max().item() for t in tensors.values())
        differences = torch.cat([(sample(got[kind][name]) - sample(t)).abs()
                                 for name, t in tensors.items()])
        median = differences.median().item()
        errors[kind] = median / scale if scale else median
    return errors
