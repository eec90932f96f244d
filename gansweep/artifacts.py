"""Everything a run writes, all under its Hydra output dir:

    samples/EEEE_BBBB.png   grid of the batch's fakes (epoch, batch), as the seed
    samples/final.png       grid from the final G in inference mode
    checkpoints/last.pt     both models, both optimisers, counters, RNG states
    metrics.jsonl           one JSON object per logged batch
    summary.json            status and headline numbers at the end

Files that must never be seen half-written (checkpoint, summary) are written to a temp file,
fsynced and renamed over the old one, so a crash mid-write leaves the previous version.
"""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import shutil
import socket
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout


def sample_name(epoch: int, batch: int) -> str:
    return f"{epoch:04d}_{batch:04d}.png"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskFullError(OSError):
    """A file could not be written for lack of space; the previous version is intact."""


def _disk_full(path: Path, exc: BaseException, needed: int) -> DiskFullError | None:
    """The one-line error for a write that failed on a full filesystem, else None. torch's
    writer says only "[enforce fail at inline_container.cc] unexpected pos ..." for it.
    ``needed``: the file's size as far as it is known (0: unknown, and left unsaid)."""
    free = shutil.disk_usage(path.parent).free
    out_of_space = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or free < needed
    if not out_of_space:
        return None
    kept = f"the last good {path.name} is kept" if path.exists() else f"no {path.name} was written"
    room = (f"it needs about {needed:,} bytes and {free:,} are free" if needed > 0
            else f"{free:,} bytes are free")
    return DiskFullError(f"no space left to write {path}: {room}; {kept}. Fix: free space "
                         "there, or move the output dir (hydra.sweep.dir=... / "
                         "hydra.run.dir=...) and run the same command again")


def atomic_write(path: Path, write, check=None, size: int = 0) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, ``check(temp path)``
    (which raises to refuse it, e.g. a checksum), then rename over ``path``: a reader never
    sees a partial or refused file. The temp file never outlives a failure. A write that
    fails on a full filesystem raises DiskFullError naming the file's size: ``size`` if the
    caller knows it, else the bytes ``write`` handed over if it got to the end (a small file
    meets a full disk only when its buffer is flushed), else none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    whole = 0  # the file's size, once ``write`` has handed all of it over
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            whole = handle.tell()
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)  # its space counts as free again
        if (full := _disk_full(path, exc, max(size, whole))) is not None:
            raise full from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def state_bytes(tree: Any) -> int:
    """The bytes of the tensors in a (nested) state: about the size of its checkpoint."""
    if isinstance(tree, torch.Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, dict):
        return sum(state_bytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(state_bytes(v) for v in tree)
    return 0


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    return atomic_write(path, lambda handle: torch.save(state, handle), size=state_bytes(state))


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely: truncated, empty, or not plain tensors."""


def load_checkpoint(path: Path, map_location="cpu", safe_globals=()) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: tensors, plain containers and the
    classes in ``safe_globals`` only.

    A checkpoint may come from elsewhere (a shared sweep dir, a download); unpickling
    arbitrary objects would run code from it, so anything else is refused unread.
    """
    fix = (f"Fix: delete {path} (the run then starts over) or restore a good copy, "
           "or use trainer.resume=never or another output dir.")
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(f"checkpoint {path} is empty (a crash mid-copy?). {fix}")
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} holds more than tensors and plain containers; refused to "
            f"unpickle it, nothing in it was run ({first}). {fix}") from None
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError) as exc:
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt "
                              f"({type(exc).__name__}: {detail}). {fix}") from None


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite_or_none(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN/Inf: write them as null (the status field says why)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}


def write_json(data: dict[str, Any], path: Path) -> Path:
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def write_record(data: dict[str, Any], path: Path) -> Path:
    """``write_json`` for a run's final record. On a full filesystem the old file goes first
    and the write is tried once more: the final record (a failed run's, a few hundred bytes)
    fits in the space the old one took, and an old ``status: running`` must not outlive the
    run. If even that fails, no record is left (the table shows the run as missing, not
    running) and DiskFullError says why."""
    try:
        return write_json(data, path)
    except DiskFullError:
        path.unlink(missing_ok=True)
        return write_json(data, path)


def truncate_metrics(path: Path, step: int) -> None:
    """Keep only rows of steps before ``step`` (0: empty the file), atomically.

    A run killed after its last checkpoint logged steps it will train again on resume;
    dropping them keeps metrics.jsonl identical to an uninterrupted run's.
    """
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] < step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            break  # a torn last line from a crash mid-write
    atomic_write(path, lambda handle: handle.write("".join(kept).encode()))


def last_row(path: Path) -> dict[str, Any] | None:
    """The last complete row of a metrics.jsonl (None if there is none)."""
    if not path.exists():
        return None
    for line in reversed(path.read_text(encoding="utf-8").splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue  # a torn last line from a crash mid-write
    return None


class OutputDirError(RuntimeError):
    """The run's output dir cannot be written."""


def write_probe(root: Path) -> OSError | None:
    """None if ``root`` can be created and written to, else the OSError that says why."""
    probe = root / ".write-probe"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return exc
    return None


def blocking_file(path: Path) -> Path | None:
    """``path`` or the nearest of its parents that exists as something other than a folder
    (a regular file where a dir must be made), or None if there is none."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return None
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return None


def ensure_writable(root: Path) -> None:
    if (exc := write_probe(root)) is not None:
        raise OutputDirError(
            f"output dir {root} is not writable ({exc.strerror or exc}). Fix: free space or "
            "permissions there, or choose another with hydra.run.dir=... / hydra.sweep.dir=..."
        ) from None


class RunLocked(RuntimeError):
    """Another process holds the run dir; ``holder``: its pid, host and since when (as far as
    ``.lock.owner`` says)."""

    def __init__(self, message: str, holder: dict | None = None):
        super().__init__(message)
        self.holder = holder or {}


class RunLock:
    """An exclusive lock on a run dir (``.lock``, an OS file lock released when its holder
    exits, also by kill -9) with the holder's pid and host in ``.lock.owner``, so a second
    process started on the same dir refuses at once, naming who holds it (``acquire``), or
    waits for it to finish (``wait``: a sweep's job that another launch is training)."""

    def __init__(self, root: Path | str, name: str = ".lock"):
        self.root = Path(root)
        self.path = self.root / name
        self.owner = self.root / f"{name}.owner"
        self._lock = FileLock(self.path, thread_local=False)

    def acquire(self) -> "RunLock":
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            try:
                holder = json.loads(self.owner.read_text())
            except (OSError, ValueError):
                holder = {}
            raise RunLocked(
                f"{self.root} is in use by pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} (since {holder.get('since', '?')}). Fix: wait for "
                "it to finish or stop it, or use another output dir.", holder) from None
        self.owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                          "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
        return self

    def wait(self, poll: float = 0.5) -> None:
        """Block until no process holds the lock (it finished, stopped or died: the OS drops
        a dead holder's lock), without taking it."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(timeout=-1, poll_interval=poll)
        self._lock.release()

    def release(self) -> None:
        if self._lock.is_locked:
            self.owner.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class MetricsLog:
    """Append-only metrics.jsonl; each row is flushed so a killed run keeps what it logged."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handle = open(path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(_finite_or_none(row), default=_json_default) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


class RunDir:
    """Paths of one run's artifacts."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.samples = self.root / "samples"
        self.checkpoint = self.root / "checkpoints" / "last.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.summary = self.root / "summary.json"
        self.final_sample = self.samples / "final.png"

    def sample(self, epoch: int, batch: int) -> Path:
        return self.samples / sample_name(epoch, batch)
