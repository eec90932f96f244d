"""Fréchet distances between MNIST-like image sets, with pytorch-fid's numerics.

Two feature extractors, never mixed in one number (metric names say which):

* ``inception`` -> ``fid_inception``: pytorch-fid's Inception-v3 pool3 (2048-d), see
  ``gansweep.inception``. Comparable to published FIDs (the seed's metric), but about
  4 images/s on 2 CPU cores: reference statistics of the 60000 training images take hours.
* ``lenet`` -> ``fid_lenet``: penultimate features (128-d) of a small MNIST classifier shipped
  with the package (``gansweep.lenet``). Seconds on a CPU; only comparable to other fid_lenet.

Numerics (pytorch-fid's ``calculate_activation_statistics`` / ``calculate_frechet_distance``):
features as float64, mean and covariance with n - 1; d^2 = |mu1-mu2|^2 + tr S1 + tr S2 -
2 tr sqrtm(S1 S2) with ``scipy.linalg.sqrtm`` (no deprecated ``disp``); when the root is not
finite, 1e-6 I is added to both covariances and it is retried; an imaginary part is dropped
when the diagonal's is within 1e-3 of 0, otherwise FIDError.

Reference statistics (MNIST training images, all or ``--limit``) are computed once per
(extractor + weights, data checksum, limit) and cached under the cache dir (``fid.cache_dir``,
default ``$GANSWEEP_CACHE`` or ``~/.cache/gansweep``). The *floor* is the FID of real
held-out test images (as many as the generated samples) against the same reference.

CLI (``gansweep-fid``): ``ref``, ``floor``, ``fetch-weights``, ``train-classifier``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from filelock import FileLock, Timeout
from scipy import linalg

from gansweep.data import MNIST_MD5, SPLIT_FILES, load_mnist
from gansweep.device import configure_backends, isolated_rng, precision, resolve_device

log = logging.getLogger(__name__)

EXTRACTORS = ("inception", "lenet")
DEFAULT_CACHE = "~/.cache/gansweep"


class FIDError(RuntimeError):
    """A Fréchet distance that cannot be computed (e.g. a large imaginary part)."""


def default_cache_dir() -> Path:
    return Path(os.environ.get("GANSWEEP_CACHE") or DEFAULT_CACHE).expanduser()


def metric_name(extractor: str) -> str:
    return f"fid_{extractor}"


# ----------------------------------------------------------------------------- numerics
def statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n - 1) of (N, D) features, in float64."""
    act = np.asarray(features, dtype=np.float64)
    if act.ndim != 2 or act.shape[0] < 2:
        raise FIDError(f"need at least 2 feature vectors of shape (N, D), got {act.shape}")
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """pytorch-fid's ``calculate_frechet_distance``."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise FIDError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs "
                       f"{mu2.shape}/{sigma2.shape} (different feature extractors?)")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular product; adding %s to the covariances' diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FIDError(f"sqrtm(S1 S2) has a large imaginary component "
                           f"(max |imag| {np.max(np.abs(covmean.imag)):.4g}); the statistics "
                           "are degenerate (too few samples? NaN features?)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ----------------------------------------------------------------------------- extractors
class ProgressBar:
    """Images done, rate and time left on one stderr line (plain lines when not a tty)."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = total, label, enabled
        self.tty = sys.stderr.isatty()
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, done_at_start: int = 0) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < (0.5 if self.tty else 30) and done < self.total:
            return
        self.last = now
        rate = (done - done_at_start) / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        filled = int(30 * done / self.total)
        text = (f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                f"{rate:.1f} img/s, {format_seconds(left)} left")
        if self.tty:
            sys.stderr.write("\r" + text + ("\n" if done >= self.total else ""))
            sys.stderr.flush()
        else:
            print(text, file=sys.stderr, flush=True)


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@dataclass
class Extractor:
    """Images (N, 1, 28, 28) in [-1, 1] -> float32 features (N, dim), batched, inference mode."""

    name: str
    tag: str  # identifies the weights: part of every cache key
    dim: int
    model: torch.nn.Module
    device: torch.device
    batch_size: int
    source: str

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        if self.name == "inception":
            from gansweep.inception import preprocess
            return self.model(preprocess((x + 1) / 2))
        return self.model.features(x)

    @torch.inference_mode()
    def features(self, images: torch.Tensor, out: np.ndarray | None = None, start: int = 0,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Features of ``images[start:]`` written into ``out`` (allocated if None)."""
        if out is None:
            out = np.empty((len(images), self.dim), dtype=np.float32)
        for i in range(start, len(images), self.batch_size):
            batch = images[i:i + self.batch_size]
            out[i:i + len(batch)] = self._batch(batch).float().cpu().numpy()
            if on_batch is not None:
                on_batch(i + len(batch))
        return out

    def throughput(self, images: torch.Tensor) -> float:
        """Images/s on one batch of ``images`` (after a one-image warm-up)."""
        self.features(images[:1])
        batch = images[:self.batch_size]
        t0 = time.perf_counter()
        self.features(batch)
        return len(batch) / (time.perf_counter() - t0)


_EXTRACTORS: dict[tuple, Extractor] = {}


def load_extractor(name: str, device: torch.device | str = "cpu",
                   cache_dir: Path | str | None = None, batch_size: int | None = None,
                   fetch: bool = True) -> Extractor:
    """The named extractor on ``device`` (kept loaded for the life of the process)."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown FID extractor {name!r}; choose one of {EXTRACTORS}")
    device = torch.device(device)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    key = (name, str(device), str(cache_dir))
    if key not in _EXTRACTORS:
        # building a network initialises its layers from the global RNG before the weights
        # are loaded: fork it, so loading an extractor never shifts a training run's streams
        with isolated_rng(device):
            _EXTRACTORS[key] = _build_extractor(name, device, cache_dir, fetch)
    extractor = _EXTRACTORS[key]
    if batch_size:
        extractor = Extractor(**{**vars(extractor), "batch_size": batch_size})
    return extractor


def _build_extractor(name: str, device: torch.device, cache_dir: Path, fetch: bool) -> Extractor:
    if name == "inception":
        from gansweep import inception
        model, source = inception.load_inception(cache_dir, device, fetch=fetch, log=log.info)
        tag, dim, default_batch = "pt_inception-2015-12-05", inception.FEATURE_DIM, 50
    else:
        from gansweep import lenet
        model = lenet.load_lenet(device)
        source = str(lenet.WEIGHTS)
        digest = hashlib.sha256(lenet.WEIGHTS.read_bytes()).hexdigest()
        tag, dim, default_batch = f"lenet-{digest[:12]}", lenet.FEATURE_DIM, 500
    return Extractor(name, tag, dim, model, device, default_batch, source)


# ----------------------------------------------------------------------------- cache
def _stats_dir(cache_dir: Path | str | None) -> Path:
    path = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "stats"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temp file beside ``path``, fsync, rename over it: readers see the old file
    or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def reference_key(extractor: Extractor, limit: int | None, split: str = "train") -> str:
    """Extractor and weights, data and limit, and where and at what precision the features
    were computed (TF32 on a GPU gives other features than float32 on a CPU)."""
    checksum = MNIST_MD5[SPLIT_FILES[split][0]]
    arithmetic = f"{extractor.device.type}-{precision(extractor.device)}"
    return f"{extractor.name}_{extractor.tag}_{split}-{checksum}_{limit or 'all'}_{arithmetic}"


def _features_resumable(extractor: Extractor, images: torch.Tensor, partial: Path,
                        progress: bool, label: str) -> np.ndarray:
    """Features of all images; progress is kept in ``partial`` (.npy + .json) so an
    interrupted hours-long Inception pass resumes where it stopped."""
    meta_path = partial.with_suffix(".json")
    n, done = len(images), 0
    if partial.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        out = np.lib.format.open_memmap(partial, mode="r+")
        if out.shape == (n, extractor.dim):
            done = int(meta["done"])
        else:
            del out
    if done == 0:
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32,
                                        shape=(n, extractor.dim))
    if done:
        log.info("%s: resuming at %d/%d images", label, done, n)
    if done < n:
        # Throughput from the first batch, extrapolated to the rest.
        t0 = time.perf_counter()
        first = min(done + extractor.batch_size, n)
        extractor.features(images[:first], out=out, start=done)
        rate = (first - done) / max(time.perf_counter() - t0, 1e-9)
        message = (f"{label}: {n - done} images to go at ~{rate:.1f} img/s "
                   f"(measured on the first batch): about {format_seconds((n - first) / rate)} "
                   "more")
        print(message, file=sys.stderr, flush=True) if progress else log.info(message)
        bar = ProgressBar(n, label, progress)
        bar.start -= (first - done) / rate
        last_flush = time.perf_counter()

        def on_batch(count: int) -> None:
            nonlocal last_flush
            bar.update(count, done)
            if time.perf_counter() - last_flush > 60:
                out.flush()
                meta_path.write_text(json.dumps({"done": count}))
                last_flush = time.perf_counter()

        bar.update(first, done)
        extractor.features(images, out=out, start=first, on_batch=on_batch)
    result = np.array(out)
    del out
    partial.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return result


def _read_reference(path: Path, dim: int) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """Cached statistics, or None (with a warning naming the file) when it is unreadable or
    not (dim,) / (dim, dim) finite statistics: a torn copy or disk fault gets recomputed."""
    try:
        with np.load(path) as f:
            mu, sigma, meta = f["mu"], f["sigma"], json.loads(str(f["meta"]))
        ok = (mu.shape == (dim,) and sigma.shape == (dim, dim)
              and np.isfinite(mu).all() and np.isfinite(sigma).all())
        problem = None if ok else f"shapes {mu.shape}/{sigma.shape} or non-finite values"
    except Exception as exc:  # noqa: BLE001 - any unreadable file is treated alike
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return mu, sigma, meta
    log.warning("FID reference statistics %s are corrupt (%s); recomputing them", path, problem)
    return None


def reference_stats(extractor: Extractor, data_root: Path | str, limit: int | None = None,
                    cache_dir: Path | str | None = None, fetch_data: bool = True,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu, sigma, meta) of the MNIST training images (first ``limit``), cached on disk.

    Jobs of a sweep share the cache: one computes under a file lock (``<file>.lock``), the
    others wait and then read what it published (atomically, fsynced). A corrupt cached file
    is named in a warning and recomputed.
    """
    key = reference_key(extractor, limit)
    path = _stats_dir(cache_dir) / f"ref_{key}.npz"
    return locked_cache(path, lambda p: _read_reference(p, extractor.dim),
                        lambda: _compute_reference(extractor, data_root, limit, fetch_data,
                                                   progress, path))


def locked_cache(path: Path, read: Callable[[Path], Any], compute: Callable[[], Any]) -> Any:
    """What ``read(path)`` gives for a published cache file, else ``compute()`` (which
    publishes ``path``) under the file's lock (``<file>.lock``): of several processes on a
    cold cache one computes, the others wait and then read. ``read`` returns None for a
    corrupt file (after naming it in a warning), which is then recomputed."""
    if path.exists() and (cached := read(path)) is not None:
        return cached
    lock = FileLock(path.with_name(path.name + ".lock"), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another process is computing %s; waiting for it (lock %s)", path, lock.lock_file)
        lock.acquire()
    try:
        if path.exists() and (cached := read(path)) is not None:
            return cached  # published by the process we waited for
        return compute()
    finally:
        lock.release()


def _compute_reference(extractor: Extractor, data_root: Path | str, limit: int | None,
                       fetch_data: bool, progress: bool,
                       path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Compute and publish reference statistics; the caller holds the cache file's lock."""
    data = load_mnist(data_root, "train", limit, fetch_data, log=log.info)
    log.info("computing %s reference statistics of %d MNIST training images -> %s",
             extractor.name, len(data), path)
    t0 = time.perf_counter()
    feats = _features_resumable(extractor, data.x, path.with_suffix(".partial.npy"), progress,
                                f"{extractor.name} reference")
    mu, sigma = statistics(feats)
    meta = {"extractor": extractor.name, "weights": extractor.tag, "count": len(data),
            "limit": limit, "data": data.checksum,
            "seconds": round(time.perf_counter() - t0, 1)}

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, mu=mu, sigma=sigma, meta=json.dumps(meta))

    _atomic(path, save)
    return mu, sigma, meta


def preflight(fid_cfg) -> None:
    """Checks made before training: the Inception weights exist (fetched when ``fid.fetch``)
    and match their sha256, so a run cannot fail on them after hours of training."""
    if fid_cfg is None or str(fid_cfg.extractor) != "inception":
        return
    from gansweep import inception

    pth = inception.hub_checkpoint()
    if pth is not None and inception.sha256_file(pth).startswith(inception.PTH_SHA256_PREFIX):
        return
    cache_dir = Path(str(fid_cfg.cache_dir)).expanduser()
    path = inception.weights_path(cache_dir)
    if not path.exists() and fid_cfg.fetch:
        inception.fetch_weights(cache_dir, log=log.info)
    inception.verify_weights(path, cache_dir)


def fid_of_images(extractor: Extractor, images: torch.Tensor, ref: tuple) -> float:
    """FID of ``images`` ((N, 1, 28, 28) in [-1, 1]) against ``ref`` = (mu, sigma, ...);
    NaN when the images (e.g. of a diverged G) give non-finite features."""
    feats = extractor.features(images)
    if not np.isfinite(feats).all():
        return float("nan")
    mu, sigma = statistics(feats)
    return frechet_distance(mu, sigma, ref[0], ref[1])


def floor(extractor: str | Extractor = "lenet", num_samples: int = 3000,
          ref_limit: int | None = None, data_root: Path | str = "data",
          cache_dir: Path | str | None = None, device: torch.device | str = "cpu",
          compute: bool = True, progress: bool = False) -> dict | None:
    """FID of the first ``num_samples`` real MNIST *test* images against the reference:
    the best a generator can hope for at this sample count. Cached; with ``compute=False``
    returns None unless it is already cached."""
    if isinstance(extractor, str):
        extractor = load_extractor(extractor, device, cache_dir)
    path = (_stats_dir(cache_dir)
            / f"floor_{reference_key(extractor, num_samples, 'test')}_vs_"
              f"{reference_key(extractor, ref_limit)}.json")
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("FID floor %s is corrupt (%s); recomputing it", path, exc)
    if not compute:
        return None
    ref = reference_stats(extractor, data_root, ref_limit, cache_dir, progress=progress)
    test = load_mnist(data_root, "test", num_samples, log=log.info)
    if len(test) < num_samples:
        raise ValueError(f"num_samples={num_samples}: the MNIST test set has {len(test)} images")
    value = fid_of_images(extractor, test.x, ref)
    result = {metric_name(extractor.name): value, "extractor": extractor.name,
              "weights": extractor.tag, "num_samples": num_samples, "ref_limit": ref_limit,
              "ref_count": ref[2]["count"], "data": test.checksum}
    _atomic(path, lambda tmp: tmp.write_text(json.dumps(result, indent=2) + "\n"))
    return result


# ----------------------------------------------------------------------------- training runs
def quantize(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> the nearest of the 256 levels an 8-bit PNG can hold (back in [-1, 1])."""
    levels = torch.round((images.clamp(-1, 1) + 1) * 127.5)
    return levels / 127.5 - 1


@torch.inference_mode()
def generate(g: torch.nn.Module, cfg, device: torch.device, n: int, seed: int,
             batch_size: int = 500) -> torch.Tensor:
    """``n`` samples of G in inference mode (BatchNorm moving averages), on CPU."""
    from hydra.utils import instantiate

    from gansweep.noise import sample_generator

    samples = sample_generator(g, instantiate(cfg.noise), cfg.model.latent_dim, n, seed, device,
                               batch_size).float().cpu()
    return quantize(samples) if cfg.fid.get("quantize", True) else samples


def evaluate(g: torch.nn.Module, cfg, device: torch.device) -> dict:
    """Every metric of ``fid.metrics`` (FID, KID, precision/recall, density/coverage) on one
    set of ``cfg.fid.num_samples`` samples of G (``gansweep.evaluation``): {key: value, ...,
    'details': {...}}."""
    from gansweep import evaluation  # late: evaluation imports this module

    return evaluation.evaluate(lambda n: generate(g, cfg, device, n, cfg.seed + 2), cfg, device)


def final_metrics(run) -> dict:
    """Summary entries for a finished ``trainer.Run``: one per metric (``fid_<extractor>``,
    ``kid_<extractor>``, ...), ``objective`` (``fid.objective``'s value, negated when it is
    maximised: what the Hydra main returns to sweepers), ``objective_metric``, and ``fid``
    (details, with the real-data floors when already cached). Empty when
    ``fid.extractor=none``."""
    from gansweep import evaluation

    cfg = run.cfg
    if "fid" not in cfg or str(cfg.fid.extractor) == "none":
        return {}
    name = metric_name(str(cfg.fid.extractor))
    objective_metric = evaluation.metric_key(str(cfg.fid.get("objective") or "fid"),
                                             str(cfg.fid.extractor))
    try:
        result = evaluate(run.g, cfg, run.device)
    except FIDError as exc:  # degenerate samples: the run itself is still complete
        log.error("%s failed: %s", name, exc)
        return {name: float("nan"), "objective": float("nan"),
                "objective_metric": objective_metric,
                "fid": {"extractor": str(cfg.fid.extractor), "error": str(exc)}}
    details = result.pop("details")
    log.info("%s (%d samples vs %d reference images)",
             ", ".join(f"{k} = {v:.4g}" for k, v in result.items()), details["num_samples"],
             details["ref_count"])
    if name in result:
        cached = floor(details["extractor"], cfg.fid.num_samples, cfg.fid.ref_limit,
                       cfg.dataset.root, cfg.fid.cache_dir, run.device, compute=False)
        if cached:
            details["floor"] = cached[name]
    floors = evaluation.floor(cfg, run.device, compute=False)
    if floors:  # the other metrics' real-vs-real values, keyed like the metrics
        details["floors"] = {k: v for k, v in floors.items() if k != "details"}
    return {**result, "objective": evaluation.objective(result, cfg.fid),
            "objective_metric": objective_metric, "fid": details}


def epoch_metrics(run) -> dict | None:
    """A metrics.jsonl row with every metric after every ``fid.every_epochs`` epochs, else
    None."""
    cfg = run.cfg
    if "fid" not in cfg or str(cfg.fid.extractor) == "none" or not cfg.fid.every_epochs:
        return None
    epoch = run.counters.epoch  # epochs completed
    if epoch % cfg.fid.every_epochs or epoch >= cfg.trainer.epochs:
        return None  # the last epoch's metrics go into summary.json
    result = evaluate(run.g, cfg, run.device)
    details = result.pop("details")
    # logged as the epoch's last batch, so a resume from the next checkpoint keeps the row
    return {"epoch": epoch - 1, "step": run.counters.step - 1, **result,
            "fid_num_samples": details["num_samples"]}


# ----------------------------------------------------------------------------- CLI
def _device(name: str) -> torch.device:
    """The CLI's device, with training's default arithmetic (float32, no TF32), so the
    statistics it caches are the ones training runs look up."""
    device = resolve_device(name)
    configure_backends(device)
    return device


def _cmd_ref(args) -> int:
    ext = load_extractor(args.extractor, _device(args.device), args.cache_dir, args.batch_size)
    if args.estimate_only:
        data = load_mnist(args.root, "train", None, log=print)
        rate = ext.throughput(data.x)
        n = args.limit or len(data)
        print(f"{ext.name}: {rate:.2f} images/s on {ext.device} (batch {ext.batch_size}, "
              f"{torch.get_num_threads()} threads); {n} reference images would take about "
              f"{format_seconds(n / rate)}.")
        return 0
    mu, sigma, meta = reference_stats(ext, args.root, args.limit, args.cache_dir)
    print(json.dumps(meta))
    return 0


def _cmd_floor(args) -> int:
    result = floor(args.extractor, args.num_samples, args.limit, args.root, args.cache_dir,
                   _device(args.device), progress=True)
    if args.metrics:  # KID, precision/recall, density/coverage of the same real images
        from omegaconf import OmegaConf

        from gansweep import evaluation
        cfg = OmegaConf.create({
            "dataset": {"root": args.root, "fetch": True},
            "fid": {"extractor": args.extractor, "num_samples": args.num_samples,
                    "ref_limit": args.limit, "cache_dir": args.cache_dir,
                    "batch_size": args.batch_size, "fetch": True,
                    "metrics": args.metrics.split(","), "ref_features": args.ref_features}})
        floors = evaluation.floor(cfg, _device(args.device))
        result = {**result, "metrics": {k: v for k, v in floors.items() if k != "details"}}
    print(json.dumps(result, indent=2))
    return 0


def _cmd_fetch(args) -> int:
    from gansweep.inception import fetch_weights
    path = fetch_weights(Path(args.cache_dir).expanduser() if args.cache_dir
                         else default_cache_dir())
    print(f"Inception weights: {path} (sha256 verified)")
    return 0


def _cmd_train(args, argv: list[str]) -> int:
    from gansweep import lenet
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    train = load_mnist(args.root, "train", log=print)
    test = load_mnist(args.root, "test", log=print)
    t0 = time.perf_counter()
    model = lenet.train(train.x, train.labels, args.epochs, args.batch_size, args.lr, args.seed)
    acc = lenet.accuracy(model, test.x, test.labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / lenet.WEIGHTS.name
    torch.save(model.state_dict(), weights)
    record = {
        "test_accuracy": acc, "test_images": len(test),
        "command": "gansweep-fid " + " ".join(shlex.quote(a) for a in argv),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "threads": args.threads, "optimizer": "Adam, lr decayed linearly to 0 per batch", "torch": torch.__version__,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "feature_dim": lenet.FEATURE_DIM, "architecture": lenet.LeNet.__doc__,
    }
    (out / lenet.RECORD.name).write_text(json.dumps(record, indent=2) + "\n")
    print(f"test accuracy {acc:.4%}; wrote {weights} and {out / lenet.RECORD.name}")
    if acc < 0.99:
        print("error: test accuracy below 99.0%", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="gansweep-fid", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--extractor", choices=EXTRACTORS, default="lenet")
    common.add_argument("--root", default="data", help="MNIST idx folder")
    common.add_argument("--cache-dir", default=None,
                        help="default: $GANSWEEP_CACHE or ~/.cache/gansweep")
    common.add_argument("--device", default="auto", help="auto | cpu | cuda")
    common.add_argument("--batch-size", type=int, default=None)
    common.add_argument("--limit", type=int, default=None,
                        help="reference: first N training images (default: all 60000)")
    p = sub.add_parser("ref", parents=[common], help="compute and cache reference statistics")
    p.add_argument("--estimate-only", action="store_true",
                   help="only measure throughput on one batch and print the expected time")
    p = sub.add_parser("floor", parents=[common],
                       help="FID of real held-out test images vs the reference")
    p.add_argument("--num-samples", type=int, default=3000)
    p.add_argument("--metrics", default="fid,kid,precision,recall,density,coverage",
                   help="also these metrics' floors (as fid.metrics; '' for the FID only)")
    p.add_argument("--ref-features", type=int, default=10000,
                   help="as fid.ref_features: seeded real subset for the non-FID metrics")
    p = sub.add_parser("fetch-weights", help="obtain and verify the Inception weights")
    p.add_argument("--cache-dir", default=None)
    p = sub.add_parser("train-classifier", help="train the LeNet shipped for fid_lenet")
    p.add_argument("--root", default="data")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "assets"))
    args = parser.parse_args(argv)
    try:
        if args.command == "ref":
            return _cmd_ref(args)
        if args.command == "floor":
            return _cmd_floor(args)
        if args.command == "fetch-weights":
            return _cmd_fetch(args)
        return _cmd_train(args, argv)
    except (FIDError, RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
