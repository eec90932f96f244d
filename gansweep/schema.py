"""Structured-config schemas: the YAML under conf/ and every command-line override are
checked against these dataclasses: types, allowed choices and unknown keys when Hydra composes
the config, value ranges in each dataclass's ``__post_init__`` when ``check`` turns the
config into objects (``OmegaConf.to_object``), once before a job trains. Only checks that
need run-time data (the dataset's size) are made elsewhere (gansweep.trainer).

Each config-group option's YAML names its schema first in its defaults list, e.g.
``conf/model/dcgan_mnist.yaml`` starts with ``defaults: [_dcgan_mnist_schema, _self_]``, and
the class it builds with ``_target_``. A user's own option may leave the schema out.

Longer than the other modules because it is a list: one dataclass per config-group option,
mirroring conf/, each with its checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

MAX_SEED = 2**32 - 3


class ConfigError(ValueError):
    """A config value outside its allowed range; the message names key, value and fix."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}. Fix it in the config "
                         f"or override it, e.g. `{key}=<value>`.")

    def under(self, prefix: str) -> "ConfigError":
        """The same error for the key as seen from the root (``d.lr`` -> ``optimizer.d.lr``)."""
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value,
                           self.allowed)


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def positive(obj, *keys: str) -> None:
    for key in keys:
        value = getattr(obj, key)
        require(_finite(value) and value > 0, key, value, "must be a finite number > 0")


def at_least_one(obj, *keys: str, null: str | None = None) -> None:
    """Each key an integer >= 1 (or null, when ``null`` says what null means)."""
    for key in keys:
        value = getattr(obj, key)
        if null is not None and value is None:
            continue
        require(value is not None and value >= 1, key, value,
                "must be an integer >= 1" + (f" or null ({null})" if null else ""))


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
    _target_: str = "gansweep.models.DCGAN"
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

    def __post_init__(self) -> None:
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

    release: str = "2.1.3"  # informational: the option file chosen (conf/keras/<release>.yaml)
    bn_zero_debias: bool = True
    bn_var_dense: MovingVar = MovingVar.biased
    bn_var_conv: MovingVar = MovingVar.unbiased
    adam_epsilon: float = 1e-7


@dataclass
class MLPConfig:
    _target_: str = "gansweep.models.MLPGAN"
    name: str = "mlp"
    impl: Impl = Impl.fast  # one implementation; selects the kernel's (kernel.impl follows it)
    latent_dim: int = 16
    data_dim: int = 2
    hidden: int = 128
    layers: int = 3
    leaky_slope: float = 0.2
    init: Init = Init.keras

    def __post_init__(self) -> None:
        at_least_one(self, "latent_dim", "data_dim", "hidden", "layers")


@dataclass
class AdamConfig:
    _target_: str = "gansweep.optim.KerasAdam"
    _partial_: bool = True  # the parameters come at run time
    lr: float = 1e-3
    beta_1: float = 0.5
    beta_2: float = 0.999
    epsilon: float = 1e-7  # K.epsilon() in Keras >= 2.1.3
    decay: float = 0.0

    def __post_init__(self) -> None:
        positive(self, "lr")
        require(_finite(self.decay) and self.decay >= 0, "decay", self.decay,
                "must be a finite number >= 0")
        positive(self, "epsilon")
        for beta in ("beta_1", "beta_2"):
            value = getattr(self, beta)
            require(0 <= value < 1, beta, value, "must be in [0, 1)")


@dataclass
class KerasAdamConfig:
    name: str = "keras_adam"
    d: AdamConfig = field(default_factory=AdamConfig)
    g: AdamConfig = field(default_factory=AdamConfig)


@dataclass
class PlummerConfig:
    _target_: str = "gansweep.kernels.PlummerKernel"
    name: str = "plummer"
    dim: int = 3
    eps: float = 1.0
    eps_half_life: float = 5000.0
    ignore_self_potential: bool = True
    impl: Impl = Impl.reference  # conf/kernel/plummer.yaml: ${model.impl}

    def __post_init__(self) -> None:
        positive(self, "eps", "eps_half_life")
        require(self.dim >= 3, "dim", self.dim, "must be >= 3 (the Plummer kernel is flat for d <= 2)")


@dataclass
class StandardGanConfig:
    _target_: str = "gansweep.objectives.StandardGAN"
    name: GanName = GanName.standard
    loss: StandardLoss = StandardLoss.keras_bce


@dataclass
class CoulombGanConfig:
    _target_: str = "gansweep.objectives.CoulombGAN"
    name: GanName = GanName.coulomb
    kernel: Any = MISSING  # conf/gan_type/coulomb.yaml: ${kernel}, built with the objective


@dataclass
class MnistConfig:
    _target_: str = "gansweep.data.MNIST"
    name: str = "mnist"
    root: str = "data"
    fetch: bool = True
    limit: Optional[int] = None
    visualizer: Any = None  # null: an image grid (gansweep.artifacts.ImageGrid)
    evaluator: Any = None  # null: the `fid` group's evaluator

    def __post_init__(self) -> None:
        at_least_one(self, "limit", null="all images")


class MixtureName(Choice):
    ring8 = "ring8"
    grid25 = "grid25"


@dataclass
class MixtureConfig:
    _target_: str = "gansweep.mixtures.MixtureDataset"
    name: MixtureName = MixtureName.ring8
    size: int = 51200  # training points, drawn once with the run's seed
    modes: int = 8
    radius: float = 2.0  # ring8
    spacing: float = 2.0  # grid25
    std: float = 0.02
    num_samples: int = 2500  # generated points scored at the end
    min_per_mode: int = 20  # high-quality points a mode needs to count as covered
    visualizer: Any = None  # null: gansweep.mixtures.Scatter
    evaluator: Any = None  # null: gansweep.mixtures.ModeMetrics

    def __post_init__(self) -> None:
        at_least_one(self, "size", "modes", "num_samples", "min_per_mode")
        positive(self, "std")


@dataclass
class NoiseConfig:
    _target_: str = "gansweep.noise.Noise"
    dist: NoiseDist = NoiseDist.uniform
    low: float = -1.0
    high: float = 1.0
    std: float = 1.0  # normal only

    def __post_init__(self) -> None:
        if self.dist == NoiseDist.uniform:
            require(self.low < self.high, "low", self.low, f"must be < noise.high={self.high}")
        else:
            require(self.std > 0, "std", self.std, "must be > 0")


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
    device: str = "auto"  # auto | cpu | cuda | cuda:N (checked below)
    tf32: bool = False  # TF32 matmuls/convolutions on CUDA (faster, not float32)
    deterministic: bool = False  # deterministic CUDA kernels (slower); else cuDNN autotunes
    fake_mode: FakeMode = FakeMode.eval
    log_every: int = 1
    progress: Progress = Progress.auto
    threads: Optional[int] = None  # torch intra-op threads; null = torch's default
    precision: Precision = Precision.fp32  # bf16: autocast forwards (gansweep.device.train_autocast)

    def __post_init__(self) -> None:
        from gansweep.device import check_device_name

        at_least_one(self, "epochs", "batch_size", "sample_every", "log_every")
        at_least_one(self, "checkpoint_every", null="not by batch count")
        minutes = self.checkpoint_minutes
        require(minutes is None or (_finite(minutes) and minutes > 0), "checkpoint_minutes",
                minutes, "must be a number > 0 or null (not by time)")
        at_least_one(self, "max_batches_per_epoch", null="all batches")
        at_least_one(self, "threads", null="torch's default")
        problem = check_device_name(str(self.device))
        require(problem is None, "device", str(self.device), problem)


# The logger group maps each logger's name to its config (conf/logger/*.yaml), so several
# compose: logger=[csv,tensorboard]. These schemas type the shipped ones: a misspelt key or
# a wrong type fails at composition. A logger of your own needs no schema, only _target_.
@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "gansweep.loggers.TensorBoardLogger"
    flush_secs: int = 30


@dataclass
class CsvLoggerConfig:
    _target_: str = "gansweep.loggers.CsvLogger"
    filename: str = "metrics.csv"


@dataclass
class MlflowLoggerConfig:
    _target_: str = "gansweep.mlflow_logger.MlflowLogger"
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    artifact_location: str = "outputs/mlartifacts"
    experiment: Optional[str] = None
    run_name: Optional[str] = None
    flush_secs: float = 30.0


LOGGER_SCHEMAS = {"tensorboard": TensorBoardLoggerConfig, "csv": CsvLoggerConfig,
                  "mlflow": MlflowLoggerConfig}


@dataclass
class FidConfig:
    """End-of-run FID (gansweep.fid): generated samples vs MNIST training-set statistics.
    ``_target_`` is the evaluator these settings build (``hydra.utils.instantiate``, with the
    run's ``data_root`` and ``device``); ``extractor: none`` builds a disabled one."""

    _target_: str = "gansweep.fid.FidEvaluator"
    extractor: FidExtractor = FidExtractor.lenet
    num_samples: int = 3000
    ref_limit: Optional[int] = None
    batch_size: Optional[int] = 500  # null: the extractor's default for the device
    every_epochs: Optional[int] = None
    quantize: bool = True
    cache_dir: str = "~/.cache/gansweep"
    fetch: bool = True
    # gansweep.fid.evaluator: which metrics, their reference subset, the best checkpoint, objective
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
    precision: Precision = Precision.fp32  # the extractor's arithmetic; bf16: Inception only


@dataclass
class ReferenceConfig:
    """The published result a preset reproduces: a study plug-in module
    (``gansweep.studies.<study>``, or a dotted module path) and the name of its row there.
    The table loads the module and shows its numbers and findings beside ours."""

    study: str = MISSING
    row: str = MISSING


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

    def __post_init__(self) -> None:
        """Checks across groups (each group's own values are checked by its class)."""
        seed = self.seed
        require(isinstance(seed, int) and 0 <= seed <= MAX_SEED, "seed", seed,
                f"must be an integer in [0, {MAX_SEED}] (seed + 1 and seed + 2 seed the final "
                "samples, and numpy-based samplers such as Optuna's take 32-bit seeds)")
        if self.fid is not None:
            _check_fid(self.fid)


def _get(node, key: str, default=None):
    return node.get(key, default) if isinstance(node, dict) else getattr(node, key, default)


def _check_fid(fid) -> None:
    """FID-family settings: sample counts the extractor's features need, known metrics."""
    from gansweep import inception, lenet

    extractor = str(_get(fid, "extractor", "none"))
    dims = {"lenet": lenet.FEATURE_DIM, "inception": inception.FEATURE_DIM}
    if extractor not in dims:
        return
    # n samples give a covariance of rank at most n - 1: n must exceed the dimension
    dim, n, ref = dims[extractor], _get(fid, "num_samples"), _get(fid, "ref_limit")
    require(n > dim, "fid.num_samples", n,
            f"must be > {dim}, the {extractor} feature dimension, for a full-rank covariance "
            "(the seed used 3000)")
    require(ref is None or ref > dim, "fid.ref_limit", ref,
            f"must be > {dim} or null (all 60000 training images)")
    batch = _get(fid, "batch_size")
    require(batch is None or batch >= 1, "fid.batch_size", batch,
            "must be >= 1, or null (the extractor's default for the device)")
    from gansweep.fid.extractors import BF16_EXTRACTORS

    precision = str(_get(fid, "precision", "fp32"))
    require(precision == "fp32" or extractor in BF16_EXTRACTORS, "fid.precision", precision,
            "bf16 exists for the Inception extractor only; use fid.precision=fp32 with "
            f"fid={extractor}, or fid=inception")
    every = _get(fid, "every_epochs")
    require(every is None or every >= 1, "fid.every_epochs", every,
            "must be >= 1 or null (only at the end)")
    _check_metrics(fid)


def _check_metrics(fid) -> None:
    """fid.metrics, best_metric and objective name known metrics; sizes fit the k's."""
    from gansweep.fid.metrics import METRICS

    names = [str(m) for m in (_get(fid, "metrics") or [])]
    bad = [m for m in names if m not in METRICS]
    require(not bad and names, "fid.metrics", names,
            f"must be a non-empty list of: {', '.join(METRICS)}")
    for key in ("best_metric", "objective"):
        value = str(_get(fid, key) or "fid")
        require(value in names, f"fid.{key}", value, f"must be one of fid.metrics ({names})")
    if set(names) - {"fid"}:
        k = max(_get(fid, "pr_k", 3), _get(fid, "dc_k", 5))
        for key in ("pr_k", "dc_k", "kid_subsets"):
            require(_get(fid, key, 1) >= 1, f"fid.{key}", _get(fid, key), "must be >= 1")
        require(_get(fid, "kid_subset_size", 1000) >= 2, "fid.kid_subset_size",
                _get(fid, "kid_subset_size"), "must be >= 2")
        require(_get(fid, "ref_features", 10000) > k, "fid.ref_features",
                _get(fid, "ref_features"), f"must be > {k} (the largest of fid.pr_k/fid.dc_k)")


def check(cfg: DictConfig) -> TrainConfig:
    """The config as objects (``OmegaConf.to_object``), which runs every schema's
    ``__post_init__``: raises ConfigError naming the key as seen from the root."""
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError as exc:
        prefix = _failing_node(cfg, "")
        raise (exc.under(prefix) if prefix else exc) from None


def _failing_node(node: DictConfig, path: str) -> str | None:
    """The dotted path of the first structured node (depth first, children before parents)
    whose own ``__post_init__`` refuses its values: a nested dataclass does not know where it
    sits (optimizer.d and optimizer.g share AdamConfig)."""
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
            found = _failing_node(child, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    kind = OmegaConf.get_type(node)
    if path and dataclasses.is_dataclass(kind):
        try:
            OmegaConf.to_object(node)
        except ConfigError:
            return path
    return None


def register() -> None:
    cs = ConfigStore.instance()
    cs.store(name="_train_schema", node=TrainConfig)
    for group, name, node in (
        ("model", "_dcgan_mnist_schema", DCGANConfig),
        ("optimizer", "_keras_adam_schema", KerasAdamConfig),
        ("kernel", "_plummer_schema", PlummerConfig),
        ("gan_type", "_standard_schema", StandardGanConfig),
        ("gan_type", "_coulomb_schema", CoulombGanConfig),
        ("dataset", "_mnist_schema", MnistConfig),
        ("dataset", "_mixture_schema", MixtureConfig),
        ("model", "_mlp_schema", MLPConfig),
        ("keras", "_keras_schema", KerasConfig),
        ("noise", "_noise_schema", NoiseConfig),
        ("trainer", "_trainer_schema", TrainerConfig),
        ("fid", "_fid_schema", FidConfig),
    ):
        cs.store(group=group, name=name, node=node)
    for name, node in LOGGER_SCHEMAS.items():  # each under its own key of the group
        cs.store(group="logger", name=f"_{name}_schema", node={name: node})


register()
