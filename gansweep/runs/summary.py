"""``summary.json``: a run's status and headline numbers beside the config that produced
them, written at start, at checkpoints and at the end; and the rule for a relaunch that
finds one (skip a finished run, continue an unfinished one, refuse another config's dir)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from gansweep import artifacts
from gansweep.runs import checkpoint
from gansweep.identity import differing, fingerprint, identity, plain_config


def entries(status: str, cfg: DictConfig, counters: checkpoint.Counters, **extra) -> dict:
    """summary.json's fields: status, progress, the ``extra`` ones (device, metrics, ...),
    and the run's own record of what produced these numbers (.hydra/ is rewritten by every
    launch into the dir; the table reads the settings from here)."""
    return {
        "status": status, "name": cfg.name, "gan_type": str(cfg.gan_type.name),
        "epochs_done": counters.epoch, "batches_done": counters.step,
        "epochs": cfg.trainer.epochs, **extra,
        "fingerprint": fingerprint(cfg), "identity": identity(cfg), "config": plain_config(cfg),
    }


def best_entries(best: dict | None) -> dict:
    """best_epoch, best_step, best_metric and best_<metric key> of a ``checkpoint.best_record``."""
    if not best:
        return {}
    return {"best_epoch": best["epoch"], "best_step": best["step"], "best_metric": best["metric"],
            **{f"best_{k}": v for k, v in best["values"].items()}}


def finished(cfg: DictConfig, out_dir: Path) -> dict | None:
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
        theirs = checkpoint.load(dirs.checkpoint).get("fingerprint")
    if theirs is None:
        return None  # nothing to compare: train (a checkpoint is still checked by resume)
    changed = differing(fingerprint(cfg), theirs)
    if changed and (summary.get("status") != "failed" or dirs.checkpoint.exists()):
        raise checkpoint.refuse_dir(out_dir, f"a run of a different configuration (differs "
                                             f"in: {', '.join(changed)})")
    if summary.get("status") != "ok" or changed:
        return None
    if summary.get("epochs_done", -1) > cfg.trainer.epochs:
        raise checkpoint.refuse_dir(out_dir, f"a run trained for {summary['epochs_done']} "
                                             f"epochs; this config asks for "
                                             f"trainer.epochs={cfg.trainer.epochs}")
    same = summary.get("identity") == identity(cfg)
    # same training, other FID settings or more epochs: resume (or only evaluate)
    return summary if same and summary.get("epochs_done", -1) >= cfg.trainer.epochs else None
