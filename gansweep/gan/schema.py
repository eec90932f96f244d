"""The schemas of the GAN's config groups (model, optimizer, kernel, gan_type, noise, keras):
the YAML under conf/<group>/ and every override are checked against these dataclasses
(types and allowed choices when Hydra composes the config, value ranges in ``check``).
They type and check; the values live in the YAML. Torch-free, like every schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from gansweep.checks import Checked, Choice, at_least_one, finite, positive, require


class Impl(Choice):
    reference = "reference"
    fast = "fast"


class BNAxis(Choice):
    keras = "keras"  # the seed: Keras' default axis=-1 (image columns after a conv)
    channel = "channel"  # the modern choice: per channel


class MovingVar(Choice):
    """The factor the batch variance carries into BatchNorm's moving variance
    (gansweep.gan.models.MOVING_VAR_RULES; docs/fidelity.md)."""

    biased = "biased"  # 1
    unbiased = "unbiased"  # n/(n-1): TF's fused batch norm (4-D inputs, Keras >= 2.1.3)
    keras214 = "keras214"  # n/(n-1-eps): Keras >= 2.1.4's layer
    unbiased_keras214 = "unbiased_keras214"  # both: 4-D inputs in Keras 2.1.4


class Init(Choice):
    keras = "keras"  # glorot_uniform weights, zero biases
    torch = "torch"  # PyTorch's layer defaults


class GanName(Choice):
    standard = "standard"
    coulomb = "coulomb"


class StandardLoss(Choice):
    keras_bce = "keras_bce"  # BCE on the clipped raw output (faithful)
    logits = "logits"  # BCE-with-logits


class NoiseDist(Choice):
    uniform = "uniform"
    normal = "normal"


@dataclass
class DCGANConfig(Checked):
    _target_: str = MISSING
    name: str = MISSING
    impl: Impl = MISSING
    latent_dim: int = MISSING
    bn_axis: BNAxis = MISSING
    bn_momentum: float = MISSING
    bn_epsilon: float = MISSING
    # set by the `keras` group (conf/model/dcgan_mnist.yaml interpolates ${keras.*})
    bn_var_dense: MovingVar = MISSING
    bn_var_conv: MovingVar = MISSING
    bn_zero_debias: bool = MISSING
    leaky_slope: float = MISSING
    dropout: float = MISSING
    init: Init = MISSING

    def check(self) -> None:
        positive(self, "bn_epsilon")
        require(0 <= self.bn_momentum < 1, "bn_momentum", self.bn_momentum, "must be in [0, 1)")
        require(0 <= self.dropout < 1, "dropout", self.dropout, "must be in [0, 1)")
        at_least_one(self, "latent_dim")


@dataclass
class KerasConfig:
    """One Keras release's semantics, chosen together (`keras=2.1.3`): BatchNorm moving
    averages (zero-debiased or plain), the moving-variance factor per layer kind, and the
    optimisers' default epsilon. model.* and optimizer.* interpolate these values, so the
    separate switches still override one of them for an experiment."""

    release: str = MISSING  # informational: the option file chosen (conf/keras/<release>.yaml)
    bn_zero_debias: bool = MISSING
    bn_var_dense: MovingVar = MISSING
    bn_var_conv: MovingVar = MISSING
    adam_epsilon: float = MISSING


@dataclass
class MLPConfig(Checked):
    _target_: str = MISSING
    name: str = MISSING
    impl: Impl = MISSING  # one implementation; selects the kernel's (kernel.impl follows it)
    latent_dim: int = MISSING
    data_dim: int = MISSING
    hidden: int = MISSING
    layers: int = MISSING
    leaky_slope: float = MISSING
    init: Init = MISSING

    def check(self) -> None:
        at_least_one(self, "latent_dim", "data_dim", "hidden", "layers")


@dataclass
class AdamConfig(Checked):
    _target_: str = MISSING
    _partial_: bool = MISSING  # the parameters come at run time
    lr: float = MISSING
    beta_1: float = MISSING
    beta_2: float = MISSING
    epsilon: float = MISSING  # K.epsilon() in Keras >= 2.1.3
    decay: float = MISSING

    def check(self) -> None:
        positive(self, "lr")
        require(finite(self.decay) and self.decay >= 0, "decay", self.decay,
                "must be a finite number >= 0")
        positive(self, "epsilon")
        for beta in ("beta_1", "beta_2"):
            value = getattr(self, beta)
            require(0 <= value < 1, beta, value, "must be in [0, 1)")


@dataclass
class KerasAdamConfig:
    name: str = MISSING
    d: AdamConfig = field(default_factory=AdamConfig)
    g: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class PlummerConfig(Checked):
    _target_: str = MISSING
    name: str = MISSING
    dim: int = MISSING
    eps: float = MISSING
    eps_half_life: float = MISSING
    ignore_self_potential: bool = MISSING
    impl: Impl = MISSING  # conf/kernel/plummer.yaml: ${model.impl}

    def check(self) -> None:
        positive(self, "eps", "eps_half_life")
        require(self.dim >= 3, "dim", self.dim,
                "must be >= 3 (the Plummer kernel is flat for d <= 2)")


@dataclass
class StandardGanConfig:
    _target_: str = MISSING
    name: GanName = MISSING
    loss: StandardLoss = MISSING


@dataclass
class CoulombGanConfig:
    _target_: str = MISSING
    name: GanName = MISSING
    kernel: Any = MISSING  # conf/gan_type/coulomb.yaml: ${kernel}, built with the objective


@dataclass
class NoiseConfig(Checked):
    _target_: str = MISSING
    dist: NoiseDist = MISSING
    low: float = MISSING
    high: float = MISSING
    std: float = MISSING  # normal only

    def check(self) -> None:
        if self.dist == NoiseDist.uniform:
            require(self.low < self.high, "low", self.low, f"must be < noise.high={self.high}")
        else:
            require(self.std > 0, "std", self.std, "must be > 0")


# (group, option, schema): stored under /schema/<group>/<option> by gansweep.schema.register
SCHEMAS = (
    ("model", "dcgan_mnist", DCGANConfig),
    ("model", "mlp", MLPConfig),
    ("optimizer", "keras_adam", KerasAdamConfig),
    ("kernel", "plummer", PlummerConfig),
    ("gan_type", "standard", StandardGanConfig),
    ("gan_type", "coulomb", CoulombGanConfig),
    ("keras", "keras", KerasConfig),
    ("noise", "noise", NoiseConfig),
)
