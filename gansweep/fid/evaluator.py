"""The FID-family evaluator: FID, KID, precision/recall and density/coverage of one set of
samples, on one extractor's features, against one reference; built from the ``fid`` config.

The trainer builds it with ``hydra.utils.instantiate(cfg.fid, data_root=..., device=...,
reference=...)`` and hands it a generator callable (as clean-fid's
``get_model_features(G, ...)``): ``sample(n)`` returns n samples (n, 1, 28, 28 for MNIST) in
[-1, 1]. It never sees the run. The reference is the run's dataset's own
(``dataset.reference()``, a ``gansweep.data.reference.Reference``); without one, MNIST under
``data_root``. An extractor whose features do not describe the dataset's samples (LeNet, an
MNIST digit classifier, for anything but digits) is refused before training
(``check_applies``).

Every metric is named by its extractor (``fid_lenet``, ``kid_lenet``, ``precision_inception``
...), never mixed. The samples are drawn once, quantised to 8 bits (``fid.quantize``), their
features extracted once, and every requested metric (``fid.metrics``) computed on them:

* FID against the cached mean/covariance of the reference images (``gansweep.fid.cache``);
* the others against a fixed, seeded subset of ``fid.ref_features`` reference features
  (drawn from the same first ``fid.ref_limit`` reference images, cached beside the
  statistics under the same key scheme). KID and PRDC use its first ``fid.num_samples``
  features, i.e. as many reals as fakes (``gansweep.fid.metrics.compute``).

Directions (``metrics.LOWER_IS_BETTER``): FID and KID are minimised; precision, recall,
density and coverage maximised. ``fid.objective`` names the metric the Hydra main returns,
always as a value to *minimise*: a maximised metric is returned negated
(``objective = -recall_lenet``), so Optuna's ``direction: minimize`` works for all of them.
``fid.best_metric`` picks the metric that decides ``checkpoints/best.pt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gansweep.fid import cache, metrics, registry
from gansweep.fid.extractors import DEFAULT_CACHE, Extractor, arithmetic, load_extractor
from gansweep.fid.frechet import FIDError, frechet_distance, metric_name, quantize, statistics
from gansweep.data.reference import Reference

log = logging.getLogger(__name__)

DEFAULT_METRICS = tuple(metrics.METRICS)
Sampler = Callable[[int], torch.Tensor]


def metric_key(metric: str, extractor: str) -> str:
    """``kid`` + ``lenet`` -> ``kid_lenet`` (the summary, metrics.jsonl and table name)."""
    return f"{metric}_{extractor}"


class NotApplicable(ValueError):
    """The extractor's features do not describe the dataset's samples; the message says why
    and names the fix."""


def check_applies(extractor: str, reference: Reference) -> None:
    """NotApplicable, in one line with the reason and the fix, when the features of
    ``extractor`` (a registry name or class path) do not describe ``reference``'s samples:
    LeNet, a classifier of MNIST digits, would score anything else as if it were digits.
    ``dataset.domain=digits`` says a dataset's images are digits, which lets LeNet score
    them (and forces it where they are not)."""
    if extractor == registry.NONE:
        return
    entry = registry.info(extractor)
    why = registry.mismatch(entry, reference.domain, reference.shape)
    if why is None:
        return
    fixes = [f"fid={name}" for name, other in registry.BUILTIN.items()
             if registry.mismatch(other, reference.domain, reference.shape) is None]
    fixes.append("an extractor of your own (examples/extending/my_features.py)")
    if registry.mismatch(entry, entry.domain, reference.shape) is None:  # only the domain
        fixes.append(f"dataset.domain={entry.domain} if the images are {entry.domain} (this "
                     f"forces {entry.name} on them)")
    raise NotApplicable(f"fid.extractor={extractor} cannot score dataset {reference.name}: "
                        f"{why}. Fix: {', or '.join(fixes)}; or fid=none")


def reference_of(dataset) -> Reference | None:
    """The FID reference of a built dataset: ``dataset.reference()``; None where the dataset
    scores itself (its ``evaluator``, as the 2-D mixtures). A dataset class with neither is
    refused, since scoring it against MNIST would be wrong."""
    if getattr(dataset, "evaluator", None) is not None:
        return None
    if not callable(getattr(dataset, "reference", None)):
        raise NotApplicable(
            f"dataset {getattr(dataset, 'name', type(dataset).__name__)} "
            f"({type(dataset).__module__}.{type(dataset).__qualname__}) has no reference(), "
            "the real samples its FID compares against. Fix: give the class a reference() "
            "returning a gansweep.data.reference.Reference (docs/evaluation.md, \"Your own "
            "dataset\"), or fid=none")
    return dataset.reference()


class FidEvaluator:
    """``fid.*`` settings (conf/fid/*.yaml, schema.FidConfig) plus the dataset's reference
    (None: MNIST under ``data_root``) and the device. ``extractor="none"`` gives a disabled
    evaluator: nothing due, no metrics."""

    # what the trainer's generator callable draws: G in chunks of 500 on noise seeded by the
    # run's seed + 2 (another stream than the final grid's seed + 1)
    seed_offset, sample_batch = 2, 500

    def __init__(self, extractor: str = "lenet", num_samples: int = 3000,
                 ref_limit: int | None = None, batch_size: int | None = 500,
                 every_epochs: int | None = None, quantize: bool = True,
                 cache_dir: str = DEFAULT_CACHE, fetch: bool = True,
                 metrics: Sequence[str] = DEFAULT_METRICS, ref_features: int = 10000,
                 ref_seed: int = 0, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 pr_k: int = 3, dc_k: int = 5, best_metric: str = "fid", objective: str = "fid",
                 precision: str = "fp32", *, data_root: Path | str = "data",
                 device: torch.device | str = "cpu", fetch_data: bool = True,
                 reference: Reference | None = None):
        self.extractor_id = str(extractor)  # a registry name or a class path
        # the metrics' suffix (fid_<name>): the entry's name, also for a class path
        self.extractor_name = (registry.info(self.extractor_id).name
                               if self.extractor_id != registry.NONE else registry.NONE)
        self.num_samples, self.ref_limit, self.batch_size = num_samples, ref_limit, batch_size
        self.every_epochs, self.quantize = every_epochs, quantize
        self.cache_dir, self.fetch = str(cache_dir), fetch
        self.precision = str(precision)  # the extractor's arithmetic (bf16: Inception only)
        names = [str(m) for m in (metrics or ["fid"])]
        unknown = sorted(set(names) - set(DEFAULT_METRICS))
        if unknown:
            raise ValueError(f"fid.metrics: unknown {unknown}; choose from {list(DEFAULT_METRICS)}")
        self.metrics = [m for m in DEFAULT_METRICS if m in names]  # in METRICS order
        # the settings that change the non-FID numbers (part of the floors' cache key)
        self.settings = {"ref_features": ref_features, "ref_seed": ref_seed,
                         "kid_subsets": kid_subsets, "kid_subset_size": kid_subset_size,
                         "pr_k": pr_k, "dc_k": dc_k}
        self.best_metric, self.objective_metric = str(best_metric or "fid"), str(objective or "fid")
        self.data_root, self.device, self.fetch_data = data_root, torch.device(device), fetch_data
        self.reference = cache.as_reference(data_root if reference is None else reference,
                                            fetch_data)

    # ------------------------------------------------------------------ what the trainer asks
    @property
    def enabled(self) -> bool:
        return self.extractor_id != registry.NONE

    @property
    def best_key(self) -> str:
        """The metric key that decides checkpoints/best.pt (``fid.best_metric``)."""
        return metric_key(self.best_metric, self.extractor_name)

    @property
    def lower_is_better(self) -> bool:
        return metrics.LOWER_IS_BETTER[self.best_metric]

    def objective(self, values: dict) -> float:
        """The number the Hydra main returns: ``fid.objective``'s value, negated when that
        metric is maximised (sweepers minimise); +inf when it could not be computed."""
        value = values.get(metric_key(self.objective_metric, self.extractor_name))
        if value is None or not math.isfinite(value):
            return math.inf
        lower = metrics.LOWER_IS_BETTER[self.objective_metric]
        return float(value) if lower else -float(value)

    def preflight(self) -> None:
        """Checks made before training: the extractor applies to the dataset
        (``check_applies``), its weights exist (fetched when ``fid.fetch``) and match their
        checksum, so a run cannot fail on them after hours."""
        if self.enabled:
            check_applies(self.extractor_id, self.reference)
            registry.implementation(self.extractor_id)().preflight(
                Path(self.cache_dir).expanduser(), self.fetch)

    def due(self, epochs_done: int, total_epochs: int | None = None) -> bool:
        """Whether a metrics.jsonl row is due after ``epochs_done`` epochs: every
        ``fid.every_epochs``, except after the last (``total_epochs``), whose metrics go into
        summary.json."""
        if not self.enabled or not self.every_epochs or epochs_done % self.every_epochs:
            return False
        return total_epochs is None or epochs_done < total_epochs

    def __call__(self, sample: Sampler) -> dict:
        """Summary entries for ``fid.num_samples`` samples of ``sample``: one per metric
        (``fid_<extractor>``, ``kid_<extractor>``, ...), ``objective``, ``objective_metric``,
        ``fid`` (details, with the real-data floors when already cached) and those floors as
        ``floor_<extractor>`` (the FID's) and ``floor_<metric>_<extractor>``. Empty when
        disabled; NaN values (and the error in details) when the FID cannot be computed."""
        if not self.enabled:
            return {}
        name = metric_name(self.extractor_name)
        objective_metric = metric_key(self.objective_metric, self.extractor_name)
        try:
            result = self.evaluate(sample)
        except FIDError as exc:  # degenerate samples: the run itself is still complete
            log.error("%s failed: %s", name, exc)
            return {name: float("nan"), "objective": float("nan"),
                    "objective_metric": objective_metric,
                    "fid": {"extractor": self.extractor_name, "error": str(exc)}}
        details = result.pop("details")
        log.info("%s (%d samples vs %d reference images)",
                 ", ".join(f"{k} = {v:.4g}" for k, v in result.items()), details["num_samples"],
                 details["ref_count"])
        fid_floor, metric_floors = self._floors(compute=False)
        if name in result and fid_floor:
            details["floor"] = fid_floor[name]
        if metric_floors:  # the other metrics' real-vs-real values, keyed like the metrics
            details["floors"] = {k: v for k, v in metric_floors.items() if k != "details"}
        return {**result, "objective": self.objective(result),
                "objective_metric": objective_metric, "fid": details,
                **self._floor_entries(details)}

    @staticmethod
    def row(result: dict) -> dict:
        """The metrics.jsonl columns of a ``__call__`` result: the metric values and
        ``fid_num_samples`` (no objective, details or floors)."""
        details = result.get("fid", {})
        values = {k: v for k, v in result.items()
                  if k not in ("objective", "objective_metric", "fid")
                  and not k.startswith("floor_")}
        return {**values, "fid_num_samples": details.get("num_samples")}

    def floors(self, compute: bool = False) -> dict:
        """The real-data floors as summary entries (``floor_lenet``, ``floor_kid_lenet``
        ...): what real held-out test images score. Cached; with ``compute=False`` only
        those already cached."""
        if not self.enabled:
            return {}
        fid_floor, metric_floors = self._floors(compute)
        details = {}
        if fid_floor:
            details["floor"] = fid_floor[metric_name(self.extractor_name)]
        if metric_floors:
            details["floors"] = {k: v for k, v in metric_floors.items() if k != "details"}
        return self._floor_entries(details)

    # ------------------------------------------------------------------ one pass
    def extractor(self) -> Extractor:
        return load_extractor(self.extractor_id, self.device, self.cache_dir, self.batch_size,
                              self.fetch, self.precision)

    def evaluate(self, sample: Sampler, quantized: bool | None = None) -> dict:
        """Every requested metric on ``fid.num_samples`` images from ``sample(n)``:
        {metric key: value, ..., 'details': {...}}. The samples are quantised unless
        ``quantized`` is False (real images already are 8-bit levels)."""
        names, name, s = self.metrics, self.extractor_name, self.settings
        t0 = time.perf_counter()
        extractor = self.extractor()
        ref = cache.reference_stats(extractor, self.reference, self.ref_limit, self.cache_dir,
                                    self.fetch_data, progress=False)
        ref_feats = None
        if any(n != "fid" and n not in metrics.CLASS_METRICS for n in names):
            ref_feats = cache.reference_features(extractor, self.reference, self.ref_limit,
                                                 s["ref_features"], s["ref_seed"],
                                                 self.cache_dir, self.fetch_data)
        t_sample = time.perf_counter()
        with torch.inference_mode():
            images = sample(self.num_samples).float().cpu()
        if self.quantize if quantized is None else quantized:
            images = quantize(images)
        feats = extractor.features(images)
        t_feats = time.perf_counter()
        probs = (extractor.probabilities(feats)
                 if any(n in metrics.CLASS_METRICS for n in names) else None)
        values, details, seconds = self.score(feats, ref, ref_feats, probs)
        seconds = {"samples_and_features": round(t_feats - t_sample, 3), **seconds,
                   "total": round(time.perf_counter() - t0, 3)}
        return {**values, "details": {
            "extractor": name, "weights": extractor.tag, "metrics": names,
            "arithmetic": arithmetic(extractor),
            "num_samples": self.num_samples, "ref_limit": self.ref_limit,
            "ref_count": ref[2]["count"], "ref_data": ref[2]["data"],
            **({"ref_features": len(ref_feats)} if ref_feats is not None else {}),
            **details, "seconds": seconds}}

    def score(self, feats: np.ndarray, ref_stats, ref_feats,
              probs: np.ndarray | None = None) -> tuple[dict, dict, dict]:
        """(values by metric key, details, seconds by metric) of generated ``feats`` (and a
        classifier's ``probs`` of them, for the class metrics). Non-finite features (a
        diverged G) give NaN for every metric."""
        names, s = self.metrics, self.settings
        values, details, seconds = {}, {}, {}
        finite = bool(np.isfinite(feats).all())
        if "fid" in names:
            t0 = time.perf_counter()
            value = float("nan")
            if finite:
                mu, sigma = statistics(feats)
                value = frechet_distance(mu, sigma, ref_stats[0], ref_stats[1])
            values[metric_key("fid", self.extractor_name)] = value
            seconds["fid"] = round(time.perf_counter() - t0, 3)
        others = [n for n in names if n != "fid" and n not in metrics.CLASS_METRICS]
        if others:
            if finite:
                result, took = metrics.compute(others, ref_feats, feats, s["kid_subsets"],
                                               s["kid_subset_size"], s["ref_seed"], s["pr_k"],
                                               s["dc_k"], real_samples=len(feats))
            else:
                result, took = {n: float("nan") for n in others}, {}
            for other in others:
                values[metric_key(other, self.extractor_name)] = result[other]
            details.update({k: v for k, v in result.items() if k not in others})
            seconds.update({k: round(v, 3) for k, v in took.items()})
        wanted = [n for n in names if n in metrics.CLASS_METRICS]
        if wanted:  # in METRICS order, after the feature metrics
            result = (metrics.class_metrics(probs, wanted) if finite and probs is not None
                      else {n: float("nan") for n in wanted})
            for name in wanted:
                values[metric_key(name, self.extractor_name)] = result[name]
        return values, details, seconds

    # ------------------------------------------------------------------ floors
    def metric_floor(self, compute: bool = True) -> dict | None:
        """Every requested metric of the first ``fid.num_samples`` real held-out samples
        (MNIST's *test* images) against the same reference: what a perfect generator would
        score at this sample count (FID's and KID's floor; precision/recall/density/
        coverage's ceiling). Cached; with ``compute=False`` None unless cached. None for a
        dataset without held-out samples (an image folder)."""
        reference = self.reference
        if "test" not in reference.splits:
            return None
        extractor = self.extractor()
        settings = json.dumps({"metrics": self.metrics, **self.settings}, sort_keys=True)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:10]
        test_key = cache.reference_key(extractor, self.num_samples, "test", reference)
        path = (cache.stats_dir(self.cache_dir)
                / f"floor-metrics_{test_key}_vs_"
                  f"{cache.reference_key(extractor, self.ref_limit, reference=reference)}_"
                  f"{digest}.json")
        if not compute:
            return cache.read_json(path) if path.exists() else None

        def compute_floor() -> dict:
            test = reference.load("test", self.num_samples)
            if len(test) < self.num_samples:
                raise ValueError(f"fid.num_samples={self.num_samples}: the "
                                 f"{reference.describe('test')} are {len(test)}")
            result = self.evaluate(lambda n: test.x[:n], quantized=False)
            result["details"]["settings"] = json.loads(settings)
            return cache.write_json(path, result)

        return cache.locked_cache(path, cache.read_json, compute_floor)

    def _floors(self, compute: bool) -> tuple[dict | None, dict | None]:
        if "test" not in self.reference.splits:  # no held-out samples: no floors
            return None, None
        fid_floor = None
        if "fid" in self.metrics or compute:
            fid_floor = cache.floor(self.extractor(), self.num_samples, self.ref_limit,
                                    self.reference, self.cache_dir, self.device, compute=compute)
        return fid_floor, self.metric_floor(compute)

    def _floor_entries(self, details: dict) -> dict:
        """``floor_<extractor>`` (the FID's floor, for the table) and ``floor_<key>`` of the
        other metrics, as the summary has always named them."""
        out = {}
        if "floor" in details:
            out[f"floor_{self.extractor_name}"] = details["floor"]
        for key, value in details.get("floors", {}).items():
            if not key.startswith("fid_"):
                out[f"floor_{key}"] = value
        return out


def build_evaluator(fid_cfg, dataset=None, **context):
    """The evaluator the ``fid`` config names (``hydra.utils.instantiate(fid_cfg, **context)``;
    ``context``: ``data_root``, ``device``, ``fetch_data``), scoring against ``dataset``'s
    reference (``reference_of``; no dataset: MNIST under ``data_root``); a disabled one when
    the config has no ``fid`` group."""
    if fid_cfg is None:
        return FidEvaluator(extractor=registry.NONE, **context)
    if dataset is not None and str(fid_cfg.get("extractor", registry.NONE)) != registry.NONE:
        context["reference"] = reference_of(dataset)
    if "_target_" not in fid_cfg:  # a config saved before the group named its class
        fid_cfg = OmegaConf.merge({"_target_": "gansweep.fid.FidEvaluator"}, fid_cfg)
    return instantiate(fid_cfg, **context)


def preflight(fid_cfg, reference: Reference | None = None) -> None:
    """``FidEvaluator.preflight`` from a ``fid`` config, before a device is chosen (the
    sweep launcher's check): the extractor applies to ``reference`` (the dataset's; None:
    MNIST) and its weights exist and are verified."""
    if fid_cfg is None or str(fid_cfg.extractor) == registry.NONE:
        return
    FidEvaluator(extractor=str(fid_cfg.extractor), cache_dir=fid_cfg.cache_dir,
                 fetch=fid_cfg.fetch, reference=reference).preflight()
