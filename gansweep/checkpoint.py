"""What a run's numbers depend on, and the files that carry a run across crashes.

- ``fingerprint`` / ``identity``: the settings that change what a run computes (a checkpoint
  made under other values is refused) and, with the epoch budget and FID settings, what a
  finished run's numbers depend on (its sweep job dir is named by ``identity_hash``).
- ``checkpoints/last.pt``: G, D, both optimisers, counters, the epoch's shuffle and every RNG
  state, written atomically at batch boundaries (``save``) and continued by ``resume``.
- ``checkpoints/best.pt``: G and D of the best evaluation so far (``update_best``).
- ``summary.json``: the run's status, written at start, at checkpoints and at the end
  (``write_status``); ``finished_summary`` reads it to skip a finished run or refuse a dir
  that holds another configuration's.

The functions take the ``trainer.Run`` they serve (its models, optimisers, counters).
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gansweep import artifacts, fid
from gansweep.device import memory_report

log = logging.getLogger("gansweep.trainer")


@dataclass
class Counters:
    epoch: int = 0  # current epoch
    batch: int = 0  # next batch to train within the epoch
    step: int = 0  # batches trained in total (the eps schedule's t)
    seconds: float = 0.0  # training wall time so far, summed over resumes


class Diverged(RuntimeError):
    """A loss or a weight became NaN or Inf."""


class ResumeError(RuntimeError):
    """The output dir holds a checkpoint that this config cannot continue."""


class Interrupted(RuntimeError):
    """SIGTERM or SIGINT arrived; a checkpoint was written at the next batch boundary."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


@contextmanager
def on_stop_signals(handler):
    """SIGTERM (cluster pre-emption, kill) and SIGINT go to ``handler`` inside the block (the
    main thread only: Python delivers signals there); the previous handlers come back after."""
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


# ----------------------------------------------------------------------------- identity
# Settings that change what a run computes: a checkpoint made under other values is refused.
FINGERPRINT_KEYS = ("model", "optimizer", "kernel", "gan_type", "noise", "seed", "dataset",
                    "trainer.batch_size", "trainer.max_batches_per_epoch", "trainer.fake_mode")
# ...minus those that do not: where files live, the fast/reference implementation switch, how
# samples are pictured and scored, and the kernel inside gan_type (the kernel group, above).
NOT_FINGERPRINTED = {"model": ("impl",), "kernel": ("impl",), "gan_type": ("kernel",),
                     "dataset": ("root", "fetch", "num_samples", "min_per_mode", "visualizer",
                                 "evaluator")}
# ...plus what else a finished run's numbers depend on: its epoch budget and how its FID is
# measured (not where files live or the FID batch size): a job's identity.
IDENTITY_KEYS = ("trainer.epochs", "fid")
NOT_IN_IDENTITY = {"fid": ("cache_dir", "fetch", "batch_size")}


def _select(cfg: DictConfig, keys, dropped: dict) -> dict:
    out = {}
    for key in keys:
        value = OmegaConf.select(cfg, key)
        out[key] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
    for group, names in dropped.items():
        for name in names:
            (out.get(group) or {}).pop(name, None)
    return json.loads(json.dumps(out, default=str))


def fingerprint(cfg: DictConfig) -> dict:
    out = _select(cfg, FINGERPRINT_KEYS, NOT_FINGERPRINTED)
    # bfloat16 forwards compute other numbers; named only when not the default fp32, so the
    # fingerprints (and sweep dir hashes) of float32 runs stay what they were
    if str(OmegaConf.select(cfg, "trainer.precision", default="fp32")) != "fp32":
        out["trainer.precision"] = str(cfg.trainer.precision)
    return out


def identity(cfg: DictConfig) -> dict:
    out = {**fingerprint(cfg), **_select(cfg, IDENTITY_KEYS, NOT_IN_IDENTITY)}
    # a bf16 Inception scores other numbers; named only when not the default fp32, so the
    # identities (and job dir hashes) of float32 runs stay what they were
    if (out.get("fid") or {}).get("precision") == "fp32":
        del out["fid"]["precision"]
    return out


def identity_hash(cfg: DictConfig) -> str:
    """8 hex digits of sha256 over the job's identity: equal configs give equal hashes."""
    text = json.dumps(identity(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def plain_config(cfg: DictConfig) -> dict:
    """The resolved config as plain containers (enums as strings), for checkpoints and
    summary.json: loadable without unpickling any class."""
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


def _differing(mine: dict, theirs: dict) -> list[str]:
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))


def _refuse_dir(out_dir: Path, what: str) -> ResumeError:
    return ResumeError(f"{out_dir} holds {what}. Fix: use another output dir (a sweep's default "
                       "job dirs are named by a hash of the config), or trainer.resume=never "
                       "to start over there.")


# ----------------------------------------------------------------------------- last.pt
def state_dict(run) -> dict:
    state = {
        "generator": run.g.state_dict(), "discriminator": run.d.state_dict(),
        "opt_d": run.opt_d.state_dict(), "opt_g": run.opt_g.state_dict(),
        "counters": vars(run.counters).copy(), "perm": run.perm, "perm_epoch": run.perm_epoch,
        "rng": {"torch": torch.get_rng_state(), "noise": run.generator.get_state()},
        "fingerprint": fingerprint(run.cfg),
        # the noise generator's state only fits a generator of the same device type
        "device_type": run.device.type, "precision": run.precision,
        "config": plain_config(run.cfg),
        "best": run.best,  # so a resumed run keeps comparing against the right best
    }
    if run.device.type == "cuda":
        state["rng"]["cuda"] = torch.cuda.get_rng_state(run.device)
    return state


def load_state_dict(run, state: dict) -> None:
    run.g.load_state_dict(state["generator"])
    run.d.load_state_dict(state["discriminator"])
    run.opt_d.load_state_dict(state["opt_d"])
    run.opt_g.load_state_dict(state["opt_g"])
    run.counters = Counters(**state["counters"])
    perm = state["perm"]
    run.perm = perm.to(run.device) if perm is not None else None
    run.perm_epoch = state["perm_epoch"]
    run.best = state.get("best")
    # RNG states are CPU ByteTensors whatever the device (set_rng_state refuses others)
    rng = {name: value.cpu() for name, value in state["rng"].items()}
    torch.set_rng_state(rng["torch"])
    run.generator.set_state(rng["noise"])
    if "cuda" in rng and run.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], run.device)


def weights_finite(run) -> bool:
    return all(bool(torch.isfinite(t).all()) for module in (run.g, run.d)
               for t in module.state_dict().values() if t.is_floating_point())


def save(run) -> None:
    """Write last.pt atomically, never over a good checkpoint with non-finite weights."""
    if not weights_finite(run):
        raise Diverged("non-finite weights")
    artifacts.save_checkpoint(state_dict(run), run.dirs.checkpoint)
    run.last_checkpoint = run.wall()


def check_device(run, state: dict) -> None:
    """Refuse a checkpoint made on another device type or at another precision: CPU and CUDA
    noise generators have different states (and streams), and TF32 changes the numbers, so
    continuing would silently make a different run."""
    saved_type = state.get("device_type") or ("cuda" if "cuda" in state["rng"] else "cpu")
    saved_precision = state.get("precision", run.precision)
    if (saved_type, saved_precision) != (run.device.type, run.precision):
        raise ResumeError(
            f"{run.dirs.root} holds a checkpoint made on {saved_type} ({saved_precision}) "
            f"but this run is on {run.device.type} ({run.precision}); the noise "
            "generator's state and the arithmetic do not carry over. Fix: resume with "
            f"trainer.device={saved_type}"
            + (" trainer.tf32=true" if saved_precision == "tf32" else "")
            + ", or use another output dir (or trainer.resume=never) to start over.")


def resume(run) -> bool:
    """Continue from checkpoints/last.pt when trainer.resume=auto and one exists."""
    path, cfg = run.dirs.checkpoint, run.cfg
    if str(cfg.trainer.resume) == "never" or not path.exists():
        return False
    # to CPU first: RNG states must stay CPU ByteTensors; load_state_dict moves the rest
    state = artifacts.load_checkpoint(path, map_location="cpu")
    mine = fingerprint(cfg)
    if state.get("fingerprint") != mine:
        changed = sorted(k for k in mine if state.get("fingerprint", {}).get(k) != mine[k])
        raise _refuse_dir(run.dirs.root, "a checkpoint of a different configuration "
                                         f"(differs in: {', '.join(changed)})")
    check_device(run, state)
    if state["counters"]["epoch"] > cfg.trainer.epochs:
        raise _refuse_dir(run.dirs.root, f"a run trained for {state['counters']['epoch']} "
                                         f"epochs; this config asks for trainer.epochs="
                                         f"{cfg.trainer.epochs}")
    load_state_dict(run, state)
    # rows logged after the checkpoint by the interrupted run are logged again
    artifacts.truncate_metrics(run.dirs.metrics, run.counters.step)
    log.info("resumed from %s at epoch %d, batch %d (step %d)", path, run.counters.epoch,
             run.counters.batch, run.counters.step)
    return True


# ----------------------------------------------------------------------------- best.pt
def update_best(run, values: dict, epoch: int) -> bool:
    """Keep checkpoints/best.pt: G and D (plain tensors, like last.pt) of the evaluation with
    the best value of the evaluator's ``best_key`` so far. True when this one became the best."""
    key, lower = run.evaluator.best_key, run.evaluator.lower_is_better
    if key is None or key not in values or not fid.is_better(
            values[key], run.best["value"] if run.best else None, lower):
        return False
    suffix = "_" + key.rsplit("_", 1)[-1]  # the extractor's metrics: fid_lenet, kid_lenet, ...
    run.best = {"metric": key, "lower_is_better": lower, "value": values[key],
                "epoch": epoch, "step": run.counters.step - 1,
                "values": {k: v for k, v in values.items() if k.endswith(suffix)}}
    artifacts.save_checkpoint({"generator": run.g.state_dict(),
                               "discriminator": run.d.state_dict(), "best": run.best,
                               "fingerprint": fingerprint(run.cfg)},
                              run.dirs.root / "checkpoints" / "best.pt")
    return True


def best_summary(best: dict | None) -> dict:
    """best_epoch, best_step, best_metric and best_<metric key> for summary.json."""
    if not best:
        return {}
    return {"best_epoch": best["epoch"], "best_step": best["step"], "best_metric": best["metric"],
            **{f"best_{k}": v for k, v in best["values"].items()}}


# ----------------------------------------------------------------------------- summary.json
def write_status(run, status: str, **extra) -> dict:
    c, cfg = run.counters, run.cfg
    summary = {
        "status": status, "name": cfg.name, "gan_type": str(cfg.gan_type.name),
        "epochs_done": c.epoch, "batches_done": c.step, "epochs": cfg.trainer.epochs,
        "batches_per_epoch": run.batches_per_epoch, "wall_seconds": round(c.seconds, 3),
        "device": str(run.device), "precision": run.precision,
        "deterministic": bool(cfg.trainer.deterministic), "seed": cfg.seed,
        **memory_report(run.device), **extra,
        # the run's own record of what produced these numbers (.hydra/ is rewritten by every
        # launch into this dir): the table reads its settings from here
        "fingerprint": fingerprint(cfg), "identity": identity(cfg), "config": plain_config(cfg),
    }
    artifacts.write_json(summary, run.dirs.summary)
    return summary


def finished_summary(cfg: DictConfig, out_dir: Path) -> dict | None:
    """The summary of a run that already completed exactly this config in ``out_dir``, else
    None (train or resume). A dir holding another configuration's run is refused (ResumeError)
    before anything is written: its numbers must never be reported for this config."""
    dirs = artifacts.RunDir(out_dir)
    if str(cfg.trainer.resume) == "never" or not dirs.summary.exists():
        return None
    try:
        summary = json.loads(dirs.summary.read_text())
    except (OSError, ValueError):
        return None
    theirs = summary.get("fingerprint")
    if theirs is None and dirs.checkpoint.exists():  # a summary from before runs recorded it
        theirs = artifacts.load_checkpoint(dirs.checkpoint).get("fingerprint")
    if theirs is None:
        return None  # nothing to compare: train (a checkpoint is still checked by resume)
    changed = _differing(fingerprint(cfg), theirs)
    if changed and (summary.get("status") != "failed" or dirs.checkpoint.exists()):
        raise _refuse_dir(out_dir, f"a run of a different configuration (differs in: "
                                   f"{', '.join(changed)})")
    if summary.get("status") != "ok" or changed:
        return None
    if summary.get("epochs_done", -1) > cfg.trainer.epochs:
        raise _refuse_dir(out_dir, f"a run trained for {summary['epochs_done']} epochs; this "
                                   f"config asks for trainer.epochs={cfg.trainer.epochs}")
    same = summary.get("identity") == identity(cfg)
    # same training, other FID settings or more epochs: resume (or only evaluate)
    return summary if same and summary.get("epochs_done", -1) >= cfg.trainer.epochs else None
