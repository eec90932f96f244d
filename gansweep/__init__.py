"""gansweep: a Hydra experiment harness for GAN hyperparameter sweeps.

The package by responsibility (README, "Layout"), lower layers never importing higher ones:

- leaves every layer uses: ``artifacts`` (files, locks), ``checks`` (what the config
  schemas share), ``device``, ``identity``, ``pictures``;
- the config schemas, each beside the code it configures (``gan.schema``, ``data.schema``,
  ``fid.schema``, ``runs.schema``) and the root ``schema``: a layer of their own, torch-free;
- ``gan/``: the maths of a run (networks, kernels, objectives, optimiser, one step) and a
  run as a value (``gan.state``); ``packed/``: the same maths fused over N runs;
- ``data/``: datasets and their FID references; ``fid/``: feature extractors and metrics;
- ``runs/``: the run-dir lifecycle (the trainer that drives a run, checkpoints, extension,
  summary, signals, re-scoring); ``sweep/``: sweepers and launchers;
- ``report/``: tables and pages, torch-free; ``bench/``: speed; ``train``: the entry point.

Configs and records name classes by the module paths they had when the runs were made
(``gansweep.models.DCGAN``): those paths are part of a job's identity hash, so they keep
resolving (``MOVED``), to the modules that now hold the classes.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# module paths that configs, records and checkpoints of earlier releases name -> where they are
MOVED = {
    **{f"gansweep.{n}": f"gansweep.gan.{n}"
       for n in ("models", "kernels", "objectives", "step", "optim", "noise", "onednn")},
    **{f"gansweep.{n}": f"gansweep.runs.{n}"
       for n in ("trainer", "checkpoint", "dirs", "extend", "summary", "signals", "progress",
                 "preflight", "rescore", "loggers", "mlflow_logger")},
    "gansweep.halving": "gansweep.sweep.halving",
    **{f"gansweep.{n}": f"gansweep.data.{n}"
       for n in ("mixtures", "download", "image_folder", "reference")},
}


class _Moved(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module that now holds its code (the same module object,
    so a class has one identity whichever path named it)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        self.spec = module.__spec__  # the import system sets the alias's spec on it: undone
        return module

    def exec_module(self, module):
        module.__spec__ = self.spec

    def get_code(self, fullname):
        """``python -m <old path>`` (runpy): the code of the module that holds it now."""
        target = importlib.util.find_spec(MOVED[fullname])
        return target.loader.get_code(target.name)


if not any(isinstance(finder, _Moved) for finder in sys.meta_path):
    sys.meta_path.insert(0, _Moved())
