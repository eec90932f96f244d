"""The root of the config: ``TrainConfig`` composes every group's schema, ``check`` turns a
composed config into objects (running each schema's range checks) and names a refused key
as seen from the root, and ``register`` stores every schema under ``/schema/<group>/<option>``.

The YAML under conf/ and every command-line override are checked against the schemas: types,
allowed choices and unknown keys when Hydra composes the config, value ranges in each
dataclass's ``check`` when ``check`` turns the config into objects (``OmegaConf.to_object``),
once before a job trains. Only checks that need run-time data (the dataset's size) are made
elsewhere (gansweep.runs.trainer).

Each schema sits beside the code it configures (Hydra's structured-config layout):

========================  ==================================================
``gansweep.gan.schema``   model, optimizer, kernel, gan_type, noise, keras
``gansweep.data.schema``  dataset
``gansweep.fid.schema``   fid
``gansweep.runs.schema``  trainer, logger
``gansweep.checks``       what they share: ConfigError, Checked, Choice
========================  ==================================================

The schemas type and check; they hold no values. Every value lives in one place, the YAML
under conf/ (tests/test_config.py fails on a value defined twice). Each config-group option's
YAML names its schema first in its defaults list, e.g. ``conf/model/dcgan_mnist.yaml`` starts
with ``defaults: [/schema/model/dcgan_mnist@_here_, _self_]``, and the class it builds with
``_target_``. A user's own option may leave the schema out. No schema imports torch, so a
config composes and checks without it.

The names below that live in the group modules are imported here too: code and checkpoints of
earlier releases name them as ``gansweep.schema.<name>``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gansweep.checks import (Checked, Choice, ConfigError, UnknownKeyError,  # noqa: F401
                             at_least_one, positive, require)
from gansweep.data import schema as data_schema
from gansweep.data.schema import (ImageFolderConfig, MixtureConfig, MixtureName,  # noqa: F401
                                  MnistConfig)
from gansweep.fid import schema as fid_schema
from gansweep.fid.schema import FidConfig, FidExtractor, check_fid  # noqa: F401
from gansweep.gan import schema as gan_schema
from gansweep.gan.schema import (AdamConfig, BNAxis, CoulombGanConfig, DCGANConfig,  # noqa: F401
                                 GanName, Impl, Init, KerasAdamConfig, KerasConfig, MLPConfig,
                                 MovingVar, NoiseConfig, NoiseDist, PlummerConfig,
                                 StandardGanConfig, StandardLoss)
from gansweep.runs import schema as runs_schema
from gansweep.runs.schema import (LOGGER_SCHEMAS, CsvLoggerConfig, FakeMode,  # noqa: F401
                                  MlflowLoggerConfig, Precision, Progress, Resume,
                                  TensorBoardLoggerConfig, TrainerConfig)

MAX_SEED = 2**32 - 3


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
            fid_schema.check_fid_values(self.fid)



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



def _choices(kind: type) -> list[type]:
    return [k for sub in kind.__subclasses__() for k in (sub, *_choices(sub))]


# Every str enum of the schemas: checkpoints written before configs were stored as plain
# strings hold them, and gansweep.runs.checkpoint.load allows exactly these classes to be
# rebuilt, under the module path each has now and under ``gansweep.schema.<name>``, where
# every one of them lived when those checkpoints were written.
CHOICES = tuple(sorted(_choices(Choice), key=lambda kind: kind.__name__))
CHECKPOINT_GLOBALS = CHOICES + tuple((kind, f"{__name__}.{kind.__name__}") for kind in CHOICES
                                     if kind.__module__ != __name__)

SCHEMAS = gan_schema.SCHEMAS + data_schema.SCHEMAS + fid_schema.SCHEMAS + runs_schema.SCHEMAS


def register() -> None:
    """Store each schema under ``schema/<group>/<option>``, outside the config groups, so it
    never shows as an option in Hydra's errors or ``--help``; an option's YAML names its own
    first, e.g. conf/model/dcgan_mnist.yaml: ``defaults: [/schema/model/dcgan_mnist@_here_,
    _self_]``."""
    cs = ConfigStore.instance()
    cs.store(group="schema", name="train", node=TrainConfig)
    for group, name, node in SCHEMAS:
        cs.store(group=f"schema/{group}", name=name, node=node)
    for name, node in LOGGER_SCHEMAS.items():  # each under its own key of the group
        cs.store(group="schema/logger", name=name, node={name: node})


register()
