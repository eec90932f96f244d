"""Structured-config schemas: the YAML under conf/ and every command-line override are
checked against these dataclasses: types, allowed choices and unknown keys when Hydra composes
the config, value ranges in each dataclass's ``check`` when ``check`` turns the
config into objects (``OmegaConf.to_object``), once before a job trains. Only checks that
need run-time data (the dataset's size) are made elsewhere (gansweep.runs.trainer).

The schemas type and check; they hold no values. Every value lives in one place, the YAML
under conf/ (tests/test_config.py fails on a value defined twice). Each config-group option's
YAML names its schema first in its defaults list, e.g. ``conf/model/dcgan_mnist.yaml`` starts
with ``defaults: [/schema/model/dcgan_mnist@_here_, _self_]``, and the class it builds with
``_target_``. A user's own option may leave the schema out.

It is long because it is a list: one dataclass per config-group option, mirroring conf/,
each with its checks.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gansweep.fid import registry
from gansweep.fid.metrics import CLASS_METRICS, METRICS

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


class UnknownKeyError(ConfigError):
    """A top-level key no schema has: ``+optimzer.d.lr=1e-3`` appends a key nothing reads, so
    without this refusal the run trains with the default it meant to change."""

    def __init__(self, path: str, value: Any, known: list[str]):
        top, rest = path.split(".")[0], path[len(path.split(".")[0]):]
        near = difflib.get_close_matches(top, known, n=1)
        self.key, self.value = path, value
        self.allowed = (f"did you mean {near[0]}?" if near
                        else f"the top-level keys are {', '.join(known)}")
        fix = (f"{near[0]}{rest}={value} (a key the config has takes no '+')" if near
               else f"drop +{path}")
        ValueError.__init__(self, f"{path}={value}: {top} is not a top-level key of "
                                  f"gansweep-train, so nothing would read it ({self.allowed}). "
                                  f"Fix: {fix}.")

    def under(self, prefix: str) -> "ConfigError":
        return self  # named from the root already


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


class Checked:
    """A schema whose ``check`` (value ranges) runs once every value is set: Hydra builds each
    schema with its fields MISSING when it is stored; ``schema.check`` runs them on the
    composed config."""

    def __post_init__(self) -> None:
        if all(getattr(self, f.name) != MISSING for f in dataclasses.fields(self)):
            self.check()

    def check(self) -> None:
        """Raise ConfigError for a value outside its range."""


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


class FakeMode(Choice):
    eval = "eval"  # G.predict: BatchNorm moving averages (the seed)
    train = "train"  # batch statistics, moving averages updated


class FidExtractor(Choice):
    """Not a schema type any more (``fid.extractor`` is any name of gansweep.fid.registry or
    a class path, checked by ``_check_fid``): kept because checkpoints written before configs
    were stored as plain strings hold it, and CHOICES lets them load."""

    none = "none"
    inception = "inception"
    lenet = "lenet"


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
        require(_finite(self.decay) and self.decay >= 0, "decay", self.decay,
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
        require(self.dim >= 3, "dim", self.dim, "must be >= 3 (the Plummer kernel is flat for d <= 2)")


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
class MnistConfig(Checked):
    _target_: str = MISSING
    name: str = MISSING
    root: str = MISSING
    fetch: bool = MISSING
    limit: Optional[int] = MISSING
    visualizer: Any = MISSING  # null: an image grid (gansweep.pictures.ImageGrid)
    evaluator: Any = MISSING  # null: the `fid` group's evaluator

    def check(self) -> None:
        at_least_one(self, "limit", null="all images")


class MixtureName(Choice):
    ring8 = "ring8"
    grid25 = "grid25"


@dataclass
class MixtureConfig(Checked):
    _target_: str = MISSING
    name: MixtureName = MISSING
    size: int = MISSING  # training points, drawn once with the run's seed
    modes: int = MISSING
    radius: float = MISSING  # ring8
    spacing: float = MISSING  # grid25
    std: float = MISSING
    num_samples: int = MISSING  # generated points scored at the end
    min_per_mode: int = MISSING  # high-quality points a mode needs to count as covered
    objective: str = MISSING  # gansweep.data.mixtures.ModeMetrics.OBJECTIVES
    visualizer: Any = MISSING  # null: gansweep.data.mixtures.Scatter
    evaluator: Any = MISSING  # null: gansweep.data.mixtures.ModeMetrics

    def check(self) -> None:
        at_least_one(self, "size", "modes", "num_samples", "min_per_mode")
        positive(self, "std")
        # torch: at check time only, so that composing a config imports none
        from gansweep.data.mixtures import ModeMetrics

        require(self.objective in ModeMetrics.OBJECTIVES, "objective", self.objective,
                f"must be one of {', '.join(ModeMetrics.OBJECTIVES)}")


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


@dataclass
class TrainerConfig(Checked):
    name: str = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    max_batches_per_epoch: Optional[int] = MISSING
    sample_every: int = MISSING
    checkpoint_every: Optional[int] = MISSING  # batches; null = none by count
    checkpoint_minutes: Optional[float] = MISSING  # wall clock; null = none by time
    resume: Resume = MISSING
    extend_from: Optional[str] = MISSING
    device: str = MISSING  # auto | cpu | cuda | cuda:N (checked below)
    tf32: bool = MISSING  # TF32 matmuls/convolutions on CUDA (faster, not float32)
    deterministic: bool = MISSING  # deterministic CUDA kernels (slower); else cuDNN autotunes
    fake_mode: FakeMode = MISSING
    log_every: int = MISSING
    progress: Progress = MISSING
    threads: Optional[int] = MISSING  # torch intra-op threads; null = torch's default
    precision: Precision = MISSING  # bf16: autocast forwards (gansweep.device.train_autocast)

    def check(self) -> None:
        at_least_one(self, "epochs", "batch_size", "sample_every", "log_every")
        at_least_one(self, "checkpoint_every", null="not by batch count")
        minutes = self.checkpoint_minutes
        require(minutes is None or (_finite(minutes) and minutes > 0), "checkpoint_minutes",
                minutes, "must be a number > 0 or null (not by time)")
        at_least_one(self, "max_batches_per_epoch", null="all batches")
        at_least_one(self, "threads", null="torch's default")
        # torch (is CUDA there?): at check time only, so that composing a config imports none
        from gansweep.device import check_device_name

        problem = check_device_name(str(self.device))
        require(problem is None, "device", str(self.device), problem)


# The logger group maps each logger's name to its config (conf/logger/*.yaml), so several
# compose: logger=[csv,tensorboard]. These schemas type the shipped ones: a misspelt key or
# a wrong type fails at composition. A logger of your own needs no schema, only _target_.
@dataclass
class TensorBoardLoggerConfig:
    _target_: str = MISSING
    flush_secs: int = MISSING
    subdir: str = MISSING


@dataclass
class CsvLoggerConfig:
    _target_: str = MISSING
    filename: str = MISSING


@dataclass
class MlflowLoggerConfig:
    _target_: str = MISSING
    tracking_uri: str = MISSING
    artifact_location: str = MISSING
    experiment: Optional[str] = MISSING
    run_name: Optional[str] = MISSING
    flush_secs: float = MISSING


LOGGER_SCHEMAS = {"tensorboard": TensorBoardLoggerConfig, "csv": CsvLoggerConfig,
                  "mlflow": MlflowLoggerConfig}


@dataclass
class FidConfig:
    """End-of-run FID (gansweep.fid): generated samples vs MNIST training-set statistics.
    ``_target_`` is the evaluator these settings build (``hydra.utils.instantiate``, with the
    run's ``data_root`` and ``device``); ``extractor: none`` builds a disabled one."""

    _target_: str = MISSING
    extractor: str = MISSING  # a gansweep.fid.registry name, a class path, or none
    num_samples: int = MISSING
    ref_limit: Optional[int] = MISSING
    batch_size: Optional[int] = MISSING  # null: the extractor's default for the device
    every_epochs: Optional[int] = MISSING
    quantize: bool = MISSING
    cache_dir: str = MISSING
    fetch: bool = MISSING
    # gansweep.fid.evaluator: which metrics, their reference subset, the best checkpoint, objective
    metrics: List[str] = MISSING
    ref_features: int = MISSING
    ref_seed: int = MISSING
    kid_subsets: int = MISSING
    kid_subset_size: int = MISSING
    pr_k: int = MISSING
    dc_k: int = MISSING
    best_metric: str = MISSING
    objective: str = MISSING
    precision: Precision = MISSING  # the extractor's arithmetic; bf16: Inception only


@dataclass
class ReferenceConfig:
    """The published result a preset reproduces: a study plug-in module
    (``gansweep.report.studies.<study>``, or a dotted module path) and the name of its row there.
    The table loads the module and shows its numbers and findings beside ours."""

    study: str = MISSING
    row: str = MISSING


@dataclass
class TrainConfig(Checked):
    keras: KerasConfig = field(default_factory=KerasConfig)
    model: Any = MISSING
    optimizer: Any = MISSING
    kernel: Any = MISSING
    gan_type: Any = MISSING
    dataset: Any = MISSING
    noise: Any = MISSING
    trainer: Any = MISSING
    logger: Any = None  # the logger group's option none is empty: no logger
    fid: Any = MISSING
    name: str = MISSING
    seed: int = MISSING
    reference: Optional[ReferenceConfig] = None

    def check(self) -> None:
        """Checks across groups (each group's own values are checked by its class)."""
        seed = self.seed
        require(isinstance(seed, int) and 0 <= seed <= MAX_SEED, "seed", seed,
                f"must be an integer in [0, {MAX_SEED}] (seed + 1 and seed + 2 seed the final "
                "samples, and numpy-based samplers such as Optuna's take 32-bit seeds)")
        if self.fid is not None:
            _check_fid(self.fid)


def _get(node, key: str, default=None):
    return node.get(key, default) if isinstance(node, dict) else getattr(node, key, default)


def check_fid(fid) -> None:
    """The fid group's checks on its own (a re-score's settings): ConfigError or nothing."""
    _check_fid(OmegaConf.to_object(fid) if isinstance(fid, DictConfig) else fid)


def _check_fid(fid) -> None:
    """FID-family settings: a registered extractor, the sample counts its features need,
    a precision it has, known metrics."""
    extractor = str(_get(fid, "extractor", registry.NONE))
    if extractor == registry.NONE:
        return
    try:
        entry = registry.info(extractor)
    except registry.UnknownExtractor as exc:
        raise ConfigError("fid.extractor", extractor, str(exc)) from None
    # n samples give a covariance of rank at most n - 1: n must exceed the dimension
    dim, n, ref = entry.dim, _get(fid, "num_samples"), _get(fid, "ref_limit")
    require(n > dim, "fid.num_samples", n,
            f"must be > {dim}, the {entry.name} feature dimension, for a full-rank covariance "
            "(the seed used 3000)")
    require(ref is None or ref > dim, "fid.ref_limit", ref,
            f"must be > {dim} or null (all 60000 training images)")
    batch = _get(fid, "batch_size")
    require(batch is None or batch >= 1, "fid.batch_size", batch,
            "must be >= 1, or null (the extractor's default for the device)")
    precision = str(_get(fid, "precision", "fp32"))
    require(precision in entry.precisions, "fid.precision", precision,
            f"the {entry.name} extractor has {', '.join(entry.precisions)}; use one of those"
            + "".join(f", or fid={name}" for name, other in registry.BUILTIN.items()
                      if precision in other.precisions and name != extractor))
    every = _get(fid, "every_epochs")
    require(every is None or every >= 1, "fid.every_epochs", every,
            "must be >= 1 or null (only at the end)")
    _check_metrics(fid)
    asked = [str(m) for m in (_get(fid, "metrics") or []) if str(m) in CLASS_METRICS]
    require(not asked or entry.classes, "fid.metrics", asked,
            f"{' and '.join(asked)} {'judge' if len(asked) > 1 else 'judges'} a classifier's "
            f"predictions, and the {entry.name} "
            "extractor does not classify; use fid=lenet for them")


def _check_metrics(fid) -> None:
    """fid.metrics, best_metric and objective name known metrics; sizes fit the k's."""
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
    ``check``: raises ConfigError naming the key as seen from the root. A top-level key
    TrainConfig does not have (one added with ``+``) is refused first (UnknownKeyError)."""
    check_top_level(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except ConfigError as exc:
        prefix = _failing_node(cfg, "")
        raise (exc.under(prefix) if prefix else exc) from None


def check_top_level(cfg: DictConfig) -> None:
    """Hydra's ``+key=value`` appends a key even to a typed config, so a misspelt group
    (``+optimzer.d.lr=1e-3``) would be kept and never read. Only the root's keys are checked:
    inside a group, a user's own option may carry keys its class takes (docs/running.md)."""
    if OmegaConf.get_type(cfg) is not TrainConfig:
        return  # not the composed training config (a hand-made one in a test or a tool)
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in cfg:
        if key not in known and key != "hydra":  # hydra: the composed config's own node
            raise UnknownKeyError(*_first_leaf(cfg, str(key)), known)


def _first_leaf(cfg: DictConfig, key: str) -> tuple[str, Any]:
    """The dotted path and value of the first leaf under ``key``, as the user wrote it:
    ``optimzer.d.lr``, 0.001."""
    node = cfg._get_node(key)
    while isinstance(node, DictConfig) and not node._is_none() and len(node):
        child = next(iter(node))
        key, node = f"{key}.{child}", node._get_node(child)
    value = node._value() if hasattr(node, "_value") else node
    return key, value if not isinstance(value, DictConfig) else {}


def _failing_node(node: DictConfig, path: str) -> str | None:
    """The dotted path of the first structured node (depth first, children before parents)
    whose own ``check`` refuses its values: a nested dataclass does not know where it
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


# Every str enum above: checkpoints written before configs were stored as plain strings hold
# them, and gansweep.runs.checkpoint.load allows exactly these classes to be rebuilt.
CHOICES = tuple(kind for kind in list(globals().values())
                if isinstance(kind, type) and issubclass(kind, Choice) and kind is not Choice)


def register() -> None:
    """Store each schema under ``schema/<group>/<option>``, outside the config groups, so it
    never shows as an option in Hydra's errors or ``--help``; an option's YAML names its own
    first, e.g. conf/model/dcgan_mnist.yaml: ``defaults: [/schema/model/dcgan_mnist@_here_,
    _self_]``."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="train", node=TrainConfig)
    for group, name, node in (
        ("model", "dcgan_mnist", DCGANConfig),
        ("model", "mlp", MLPConfig),
        ("optimizer", "keras_adam", KerasAdamConfig),
        ("kernel", "plummer", PlummerConfig),
        ("gan_type", "standard", StandardGanConfig),
        ("gan_type", "coulomb", CoulombGanConfig),
        ("dataset", "mnist", MnistConfig),
        ("dataset", "mixture", MixtureConfig),
        ("keras", "keras", KerasConfig),
        ("noise", "noise", NoiseConfig),
        ("trainer", "trainer", TrainerConfig),
        ("fid", "fid", FidConfig),
    ):
        cs.store(group=f"schema/{group}", name=name, node=node)
    for name, node in LOGGER_SCHEMAS.items():  # each under its own key of the group
        cs.store(group="schema/logger", name=name, node={name: node})


register()


# ----------------------------------------------------------------------------- image folder
@dataclass
class ImageFolderConfig(Checked):
    """``dataset=image_folder`` (gansweep.data.image_folder.ImageFolder)."""

    _target_: str = MISSING
    name: str = MISSING
    path: Optional[str] = MISSING  # required at run time (the dataset names the fix)
    channels: int = MISSING
    size: int = MISSING
    limit: Optional[int] = MISSING
    domain: Optional[str] = MISSING  # "digits": fid=lenet applies (gansweep.data.reference)
    visualizer: Any = MISSING  # null: an image grid (gansweep.pictures.ImageGrid)
    evaluator: Any = MISSING  # null: the `fid` group's evaluator

    def check(self) -> None:
        require(self.channels in (1, 3), "channels", self.channels, "must be 1 (gray) or 3 (RGB)")
        at_least_one(self, "size")
        at_least_one(self, "limit", null="all images")


ConfigStore.instance().store(group="schema/dataset", name="image_folder", node=ImageFolderConfig)
