"""What every schema shares (a leaf of the package): the error a refused value raises,
the small range checks the schemas' ``check`` methods call, the ``Checked`` base that runs
them once every value is set, and ``Choice``, the string enums of the allowed options.

The schemas themselves sit beside the code they configure: ``gansweep.gan.schema`` (model,
optimizer, kernel, gan_type, noise, keras), ``gansweep.data.schema`` (dataset),
``gansweep.fid.schema`` (fid), ``gansweep.runs.schema`` (trainer, logger), composed into
the root config by ``gansweep.schema``. None of them imports torch.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from enum import Enum
from typing import Any

from omegaconf import MISSING


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


def finite(value) -> bool:
    """A number, neither NaN nor infinite (None is not finite)."""
    return value is not None and math.isfinite(value)


def positive(obj, *keys: str) -> None:
    for key in keys:
        value = getattr(obj, key)
        require(finite(value) and value > 0, key, value, "must be a finite number > 0")


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
    schema with its fields MISSING when it is stored; ``gansweep.schema.check`` runs them on
    the composed config."""

    def __post_init__(self) -> None:
        if all(getattr(self, f.name) != MISSING for f in dataclasses.fields(self)):
            self.check()

    def check(self) -> None:
        """Raise ConfigError for a value outside its range."""


class Choice(str, Enum):
    """A string enum whose str() is its value, so code can compare and print it plainly."""

    def __str__(self) -> str:
        return self.value
