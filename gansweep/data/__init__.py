"""Datasets: MNIST (``mnist``), the 2-D mixtures (``mixtures``), a folder of images
(``image_folder``), what each hands the FID evaluator (``reference``), the downloads
(``download``) and the dataset group's schemas (``schema``).

Configs, records and job hashes name MNIST as ``gansweep.data.MNIST`` and the command
``gansweep-data`` as ``gansweep.data:main``, from when MNIST was this package's own module:
those names resolve here, to ``gansweep.data.mnist``, on first use. Importing the package
itself loads nothing, so the schemas beside it compose a config without torch.
"""

from __future__ import annotations

import importlib
import importlib.util


def __getattr__(name: str):
    """A submodule (``from gansweep.data import schema`` asks here first) or a name of the
    MNIST module, which is loaded then (PEP 562): torch is heavy."""
    missing = AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name.startswith("__"):  # asked by tools (inspect, pickle): never worth loading torch
        raise missing
    if importlib.util.find_spec(f"{__name__}.{name}"):
        return importlib.import_module(f"{__name__}.{name}")
    mnist = importlib.import_module(f"{__name__}.mnist")
    if not hasattr(mnist, name):
        raise missing
    return getattr(mnist, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(dir(importlib.import_module("gansweep.data.mnist"))))
