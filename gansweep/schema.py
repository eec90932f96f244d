"""Structured-config schemas: the YAML under conf/ and every command-line override are
validated against these dataclasses (types, allowed choices, no unknown keys).

Each config-group option's YAML names its schema first in its defaults list, e.g.
``conf/model/dcgan_mnist.yaml`` starts with ``defaults: [_dcgan_mnist_schema, _self_]``.
Value ranges (positive learning rates and so on) are checked by ``gansweep.validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Choice(str, Enum):
    """A string enum whose str() is its value, so code can compare and print it plainly."""

    def __str__(self) -> str:
        return self.value


class Impl(Choice):
    reference = "reference"
    fast = "fast"


class BNAxis(Choice):
    keras = "keras"  # the seed: Keras' default axis=-1 (image columns after a conv)
    channel = "channel"  # the modern choice: per channel


class MovingVar(Choice):
    """The factor the batch variance carries into BatchNorm's moving variance
    (gansweep.models.MOVING_VAR_RULES; docs/fidelity.md)."""

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


class FakeMode(Choice):
    eval = "eval"  # G.predict: BatchNorm moving averages (the seed)
    train = "train"  # batch statistics, moving averages updated


class FidExtractor(Choice):
    none = "none"  # no FID
    inception = "inception"  # pytorch-fid's Inception pool3 -> fid_inception
    lenet = "lenet"  # the shipped MNIST classifier's features -> fid_lenet


class Precision(Choice):
    fp32 = "fp32"  # IEEE float32 everywhere (the seed's arithmetic)
    bf16 = "bf16"  # bfloat16 autocast of the forward passes; float32 master weights


class Resume(Choice):
    auto = "auto"  # continue from checkpoints/last.pt in the output dir; skip finished runs
    never = "never"  # always start from scratch


class Progress(Choice):
    auto = "auto"  # a bar on a terminal, plain lines otherwise
    bar = "bar"
    lines = "lines"
    off = "off"


@dataclass
class DCGANConfig:
    name: str = "dcgan_mnist"
    impl: Impl = Impl.reference
    latent_dim: int = 100
    bn_axis: BNAxis = BNAxis.keras
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    # set by the `keras` group (conf/model/dcgan_mnist.yaml interpolates ${keras.*})
    bn_var_dense: MovingVar = MovingVar.biased
    bn_var_conv: MovingVar = MovingVar.unbiased
    bn_zero_debias: bool = True
    leaky_slope: float = 0.2
    dropout: float = 0.5
    init: Init = Init.keras


@dataclass
class KerasConfig:
    """One Keras release's semantics, chosen together (`keras=2.1.3`): BatchNorm moving
    averages (zero-debiased or plain), the moving-variance factor per layer kind, and the
    optimisers' default epsilon. model.* and optimizer.* interpolate these values, so the
    separate switches still override one of them for an experiment."""

    release: str = "2.1.3"  # informational: the option file chosen (conf/keras/<release>.yaml)
    bn_zero_debias: bool = True
    bn_var_dense: MovingVar = MovingVar.biased
    bn_var_conv: MovingVar = MovingVar.unbiased
    adam_epsilon: float = 1e-7


@dataclass
class MLPConfig:
    name: str = "mlp"
    impl: Impl = Impl.fast  # one implementation; selects the kernel's (kernel.impl follows it)
    latent_dim: int = 16
    data_dim: int = 2
    hidden: int = 128
    layers: int = 3
    leaky_slope: float = 0.2
    init: Init = Init.keras


@dataclass
class AdamConfig:
    lr: float = 1e-3
    beta_1: float = 0.5
    beta_2: float = 0.999
    epsilon: float = 1e-7  # K.epsilon() in Keras >= 2.1.3
    decay: float = 0.0


@dataclass
class KerasAdamConfig:
    name: str = "keras_adam"
    d: AdamConfig = field(default_factory=AdamConfig)
    g: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class PlummerConfig:
    name: str = "plummer"
    dim: int = 3
    eps: float = 1.0
    eps_half_life: float = 5000.0
    ignore_self_potential: bool = True
    impl: Impl = Impl.reference  # conf/kernel/plummer.yaml: ${model.impl}


@dataclass
class GanTypeConfig:
    name: GanName = GanName.standard
    loss: StandardLoss = StandardLoss.keras_bce  # standard GAN only


@dataclass
class MnistConfig:
    name: str = "mnist"
    root: str = "data"
    fetch: bool = True
    limit: Optional[int] = None


class MixtureName(Choice):
    ring8 = "ring8"
    grid25 = "grid25"


@dataclass
class MixtureConfig:
    name: MixtureName = MixtureName.ring8
    size: int = 51200  # training points, drawn once with the run's seed
    modes: int = 8
    radius: float = 2.0  # ring8
    spacing: float = 2.0  # grid25
    std: float = 0.02
    num_samples: int = 2500  # generated points scored at the end
    min_per_mode: int = 20  # high-quality points a mode needs to count as covered


@dataclass
class NoiseConfig:
    dist: NoiseDist = NoiseDist.uniform
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0  # normal only


@dataclass
class TrainerConfig:
    name: str = "full"
    epochs: int = 100
    batch_size: int = 128
    max_batches_per_epoch: Optional[int] = None
    sample_every: int = 200
    checkpoint_every: Optional[int] = 200  # batches; null = none by count
    checkpoint_minutes: Optional[float] = None  # wall clock; null = none by time
    resume: Resume = Resume.auto
    device: str = "auto"  # auto | cpu | cuda | cuda:N (checked by gansweep.validate)
    tf32: bool = False  # TF32 matmuls/convolutions on CUDA (faster, not float32)
    deterministic: bool = False  # deterministic CUDA kernels (slower); else cuDNN autotunes
    fake_mode: FakeMode = FakeMode.eval
    log_every: int = 1
    progress: Progress = Progress.auto
    threads: Optional[int] = None  # torch intra-op threads; null = torch's default
    precision: Precision = Precision.fp32  # bf16: autocast forwards (gansweep.device.train_autocast)


class LoggerName(Choice):
    none = "none"
    tensorboard = "tensorboard"


@dataclass
class LoggerConfig:
    name: LoggerName = LoggerName.none
    flush_secs: int = 30


@dataclass
class FidConfig:
    """End-of-run FID (gansweep.fid): generated samples vs MNIST training-set statistics."""

    extractor: FidExtractor = FidExtractor.lenet
    num_samples: int = 3000
    ref_limit: Optional[int] = None
    batch_size: int = 500
    every_epochs: Optional[int] = None
    quantize: bool = True
    cache_dir: str = "~/.cache/gansweep"
    fetch: bool = True
    # gansweep.evaluation: which metrics, their reference subset, the best checkpoint, objective
    metrics: List[str] = field(default_factory=lambda: ["fid", "kid", "precision", "recall",
                                                        "density", "coverage"])
    ref_features: int = 10000
    ref_seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3
    dc_k: int = 5
    best_metric: str = "fid"
    objective: str = "fid"


@dataclass
class ReferenceConfig:
    """The seed table's row for a preset, shown beside our numbers."""

    row: str = MISSING
    fid: float = MISSING
    image: str = ""
    # the row's settings by table column (d_lr, d_decay, g_lr, g_decay, eps0): the seed's
    # FID and rank are shown only beside runs with these values
    settings: Dict[str, float] = field(default_factory=dict)


@dataclass
class TrainConfig:
    keras: KerasConfig = field(default_factory=KerasConfig)
    model: Any = MISSING
    optimizer: Any = MISSING
    kernel: Any = MISSING
    gan_type: Any = MISSING
    dataset: Any = MISSING
    noise: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None
    fid: Any = MISSING
    name: str = "run"
    seed: int = 0
    reference: Optional[ReferenceConfig] = None


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="_train_schema", node=TrainConfig)
    for group, name, node in (
        ("model", "_dcgan_mnist_schema", DCGANConfig),
        ("optimizer", "_keras_adam_schema", KerasAdamConfig),
        ("kernel", "_plummer_schema", PlummerConfig),
        ("gan_type", "_gan_type_schema", GanTypeConfig),
        ("dataset", "_mnist_schema", MnistConfig),
        ("dataset", "_mixture_schema", MixtureConfig),
        ("model", "_mlp_schema", MLPConfig),
        ("keras", "_keras_schema", KerasConfig),
        ("noise", "_noise_schema", NoiseConfig),
        ("trainer", "_trainer_schema", TrainerConfig),
        ("logger", "_logger_schema", LoggerConfig),
        ("fid", "_fid_schema", FidConfig),
    ):
        cs.store(group=group, name=name, node=node)


register()
