"""Reference statistics and features of a dataset's real samples, and the real-data FID
floor, cached.

The reference is the dataset's own (``gansweep.data.reference.Reference``: MNIST's training images,
an image folder's images, ...); a path in its place means MNIST in that idx folder.
Reference statistics (all samples or the first ``limit``) are computed once per (extractor +
weights, the samples' content key, limit, device arithmetic) and cached under the cache dir
(``fid.cache_dir``, default ``$GANSWEEP_CACHE`` or ``~/.cache/gansweep``). Jobs of a sweep
share it: one computes under a file lock, the others wait and read what it published
(atomically, fsynced: ``gansweep.artifacts.atomic_write``). The *floor* is the FID of real
held-out samples (as many as the generated samples) against the same reference, for a
dataset that has held-out samples (MNIST's test set).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from gansweep.artifacts import atomic_write
from gansweep.data.mnist import MnistReference
from gansweep.fid.extractors import Extractor, arithmetic, default_cache_dir, load_extractor
from gansweep.fid.frechet import frechet_distance, metric_name, statistics
from gansweep.data.reference import Reference

log = logging.getLogger(__name__)


def stats_dir(cache_dir: Path | str | None) -> Path:
    path = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "stats"
    path.mkdir(parents=True, exist_ok=True)
    return path


def as_reference(source: Reference | Path | str, fetch: bool = True) -> Reference:
    """A dataset's ``Reference`` as it is; a path: MNIST in that idx folder."""
    return source if isinstance(source, Reference) else MnistReference(source, fetch)


def reference_key(extractor: Extractor, limit: int | None, split: str = "train",
                  reference: Reference | None = None) -> str:
    """Extractor and weights, the samples (``reference.key``, by content; default MNIST's,
    ``train-<md5 of its idx file>``) and limit, and where and at what precision the
    features were computed (TF32 on a GPU or a bf16 Inception give other features)."""
    data = (reference or MnistReference()).key(split)
    return f"{extractor.name}_{extractor.tag}_{data}_{limit or 'all'}_{arithmetic(extractor)}"


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


def features_resumable(extractor: Extractor, images: torch.Tensor, partial: Path,
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
                   f"(measured on the first batch): about "
                   f"{tqdm.format_interval((n - first) / rate)} more")
        print(message, file=sys.stderr, flush=True) if progress else log.info(message)
        last_flush = time.perf_counter()
        # a live bar on a terminal; in a log file a line every 30 s, not a flood
        with tqdm(total=n, initial=first, desc=label, unit="img", disable=not progress,
                  mininterval=0.5 if sys.stderr.isatty() else 30) as bar:

            def on_batch(count: int) -> None:
                nonlocal last_flush
                bar.update(count - bar.n)
                if time.perf_counter() - last_flush > 60:
                    out.flush()
                    meta_path.write_text(json.dumps({"done": count}))
                    last_flush = time.perf_counter()

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


def reference_stats(extractor: Extractor, source: Reference | Path | str,
                    limit: int | None = None, cache_dir: Path | str | None = None,
                    fetch_data: bool = True,
                    progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """(mu, sigma, meta) of the reference samples of ``source`` (a dataset's Reference, or
    an MNIST idx folder; the first ``limit``), cached on disk (``locked_cache``); a corrupt
    cached file is named in a warning and recomputed. ``meta["data"]`` names the samples."""
    reference = as_reference(source, fetch_data)
    key = reference_key(extractor, limit, reference=reference)
    path = stats_dir(cache_dir) / f"ref_{key}.npz"
    return locked_cache(path, lambda p: _read_reference(p, extractor.dim),
                        lambda: _compute_reference(extractor, reference, limit, progress, path))


def _compute_reference(extractor: Extractor, reference: Reference, limit: int | None,
                       progress: bool, path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Compute and publish reference statistics; the caller holds the cache file's lock."""
    data = reference.load("train", limit)
    log.info("computing %s reference statistics of %d %s -> %s",
             extractor.name, len(data), reference.describe("train"), path)
    t0 = time.perf_counter()
    feats = features_resumable(extractor, data.x, path.with_suffix(".partial.npy"), progress,
                               f"{extractor.name} reference")
    mu, sigma = statistics(feats)
    meta = {"extractor": extractor.name, "weights": extractor.tag, "count": len(data),
            "limit": limit, "data": data.checksum,
            "seconds": round(time.perf_counter() - t0, 1)}
    atomic_write(path, lambda handle: np.savez(handle, mu=mu, sigma=sigma, meta=json.dumps(meta)))
    return mu, sigma, meta


def reference_features(extractor: Extractor, source: Reference | Path | str,
                       limit: int | None, count: int = 10000, seed: int = 0,
                       cache_dir: Path | str | None = None, fetch_data: bool = True,
                       progress: bool = False) -> np.ndarray:
    """Features (float32) of ``count`` reference samples of ``source`` (as in
    ``reference_stats``) drawn without replacement by ``RandomState(seed)`` from the first
    ``limit`` (all when None), in draw order (so any prefix is a random subset too). Cached
    beside the reference statistics, keyed like them (``reference_key``) plus count and
    seed; KID and PRDC compare against them."""
    reference = as_reference(source, fetch_data)
    key = reference_key(extractor, limit, reference=reference)
    path = stats_dir(cache_dir) / f"ref_{key}_features-{count}-seed{seed}.npy"

    def read(p: Path) -> np.ndarray | None:
        try:
            feats = np.load(p)
            if feats.ndim == 2 and feats.shape[1] == extractor.dim and np.isfinite(feats).all():
                return feats
            problem = f"shape {feats.shape} or non-finite values"
        except Exception as exc:  # noqa: BLE001 - any unreadable file is treated alike
            problem = f"{type(exc).__name__}: {exc}"
        log.warning("reference features %s are corrupt (%s); recomputing them", p, problem)
        return None

    def compute() -> np.ndarray:
        data = reference.load("train", limit)
        index = np.random.RandomState(seed).choice(len(data), min(count, len(data)), replace=False)
        log.info("computing %d %s reference features (seed %d) -> %s", len(index),
                 extractor.name, seed, path)
        feats = features_resumable(extractor, data.x[torch.from_numpy(index)],
                                   path.with_suffix(".partial.npy"), progress,
                                   f"{extractor.name} reference features")
        atomic_write(path, lambda handle: np.save(handle, feats))
        return feats

    return locked_cache(path, read, compute)


def fid_of_images(extractor: Extractor, images: torch.Tensor, ref: tuple) -> float:
    """FID of ``images`` ((N, C, H, W) in [-1, 1]) against ``ref`` = (mu, sigma, ...);
    NaN when the images (e.g. of a diverged G) give non-finite features."""
    feats = extractor.features(images)
    if not np.isfinite(feats).all():
        return float("nan")
    mu, sigma = statistics(feats)
    return frechet_distance(mu, sigma, ref[0], ref[1])


def read_json(path: Path) -> dict | None:
    """A cached JSON result, or None (with a warning naming the file) when it is corrupt."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("cached result %s is corrupt (%s); recomputing it", path, exc)
        return None


def write_json(path: Path, result: dict) -> dict:
    atomic_write(path, lambda handle: handle.write((json.dumps(result, indent=2) + "\n").encode()))
    return result


def floor(extractor: str | Extractor = "lenet", num_samples: int = 3000,
          ref_limit: int | None = None, source: Reference | Path | str = "data",
          cache_dir: Path | str | None = None, device: torch.device | str = "cpu",
          compute: bool = True, progress: bool = False, precision: str = "fp32") -> dict | None:
    """FID of the first ``num_samples`` real held-out samples (MNIST's *test* images) of
    ``source`` (as in ``reference_stats``) against its reference: the best a generator can
    hope for at this sample count. Cached; with ``compute=False`` returns None unless it is
    already cached, or when the dataset has no held-out samples. ``precision`` (as
    ``fid.precision``) applies when ``extractor`` is given by name."""
    reference = as_reference(source)
    if "test" not in reference.splits:
        if not compute:
            return None
        raise ValueError(f"dataset {reference.name} has no held-out samples, so no real-data "
                         "floor; its runs are scored without one")
    if isinstance(extractor, str):
        extractor = load_extractor(extractor, device, cache_dir, precision=precision)
    path = (stats_dir(cache_dir)
            / f"floor_{reference_key(extractor, num_samples, 'test', reference)}_vs_"
              f"{reference_key(extractor, ref_limit, reference=reference)}.json")
    if not compute:
        return read_json(path) if path.exists() else None

    def compute_floor() -> dict:
        ref = reference_stats(extractor, reference, ref_limit, cache_dir, progress=progress)
        test = reference.load("test", num_samples)
        if len(test) < num_samples:
            raise ValueError(f"num_samples={num_samples}: the {reference.describe('test')} "
                             f"are {len(test)}")
        value = fid_of_images(extractor, test.x, ref)
        return write_json(path, {
            metric_name(extractor.name): value, "extractor": extractor.name,
            "weights": extractor.tag, "num_samples": num_samples, "ref_limit": ref_limit,
            "ref_count": ref[2]["count"], "data": test.checksum})

    return locked_cache(path, read_json, compute_floor)
