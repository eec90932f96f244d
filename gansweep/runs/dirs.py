"""The names of run and sweep dirs (conf/train.yaml's resolvers), from what they hold, so
that the same command again lands in the same dir:

- a run: ``outputs/runs/<name>_<hash of its identity>``;
- a sweep: ``outputs/multirun/<the command's overrides>_<their hash>``, leaving out those a
  relaunch may change and still continue the sweep (``CONTINUING``: the epoch budget, whose
  jobs extend the shorter runs beside them, and the scoring) and where its jobs run
  (``identity.PLACEMENT``: the data's folder, the torch threads), which no job's numbers are
  named by either;
- a sweep's job: ``<job number>_<name>_<hash of its identity>``, so a relaunch with changed
  settings never lands in (or skips as done) another configuration's dir; and a job whose
  identity already has a dir in the sweep, under any job number, uses that dir: a relaunch
  with a longer or reordered sweep list, or a seed listed twice, finds the run it already
  trained instead of training it again beside it.

Importing this module registers the resolvers (gansweep.conf imports it).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from omegaconf import OmegaConf

from gansweep.identity import PLACEMENT, identity_hash

CONTINUING = ("trainer.epochs", "fid")
# The sweep dir is named once, in the launching process, from the sweep's overrides: every
# job's config is composed again with that job's own overrides (seed=1, not seed=0,1,2), so
# gansweep.runs.preflight pins the name into the overrides Hydra composes the jobs with.


def safe_dirname(name) -> str:
    """``name`` as one path component (a '/' would nest the job dir where the table and a
    relaunch never look), at most 100 characters."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", str(name)).strip("-.")[:100] or "run"


def _job_id(*, _root_) -> str:
    return identity_hash(_root_)


def override_key(override: str) -> str:
    """``+fid.num_samples=500`` -> ``fid.num_samples``; ``fid=inception`` -> ``fid``."""
    return override.split("=", 1)[0].lstrip("~+")


def sweep_name(overrides, hydra_overrides=()) -> str:
    """A sweep dir's name from the command's overrides (the sweep's own, before they are
    expanded into jobs): those a relaunch may change (``CONTINUING``) left out, the rest
    sorted, as a readable prefix (80 characters at most) and 8 hex digits of their hash.
    The choice of sweeper and its settings count too (a halving sweep is not a grid's); where
    the jobs run (``identity.PLACEMENT``) does not."""
    overrides = [*overrides, *(o for o in hydra_overrides
                              if str(o).startswith(("hydra/sweeper=", "hydra.sweeper.")))]
    def continuing(override: str) -> bool:
        key = override_key(override)
        return key in PLACEMENT or any(key == k or key.startswith(k + ".") for k in CONTINUING)

    kept = sorted(str(o) for o in overrides if not continuing(str(o)))
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:8]
    return f"{safe_dirname('_'.join(kept) or 'defaults')[:80]}_{digest}"


def _finished(job_dir: Path) -> bool:
    try:
        return json.loads((job_dir / "summary.json").read_text()).get("status") == "ok"
    except (OSError, ValueError, AttributeError):
        return False


def job_dir(num, name: str, digest: str, sweep_dir: Path | str) -> str:
    """A sweep job's dir name: ``<num>_<name>_<digest>``, unless the sweep dir holds a dir of
    the same name and identity under another job number, which is then the job's (a finished
    one first, then the lowest number): a relaunch whose sweep list grew or was reordered
    (job numbers shift), or a seed listed twice, is the same run, found, not a second one."""
    own = f"{num}_{name}_{digest}"
    sweep_dir = Path(sweep_dir)
    if (sweep_dir / own).is_dir() or not sweep_dir.is_dir():
        return own
    pattern = re.compile(rf"(\d+)_{re.escape(name)}_{re.escape(digest)}")
    same = [(not _finished(p), int(m.group(1)), p.name) for p in sweep_dir.iterdir()
            if (m := pattern.fullmatch(p.name)) and p.is_dir()]
    return min(same)[2] if same else own


def _job_dir(num, name, digest, *, _root_) -> str:
    return job_dir(num, name, digest, _root_.hydra.sweep.dir)


def _sweep_name(*, _root_) -> str:
    return sweep_name(_root_.hydra.overrides.task, _root_.hydra.overrides.hydra)


OmegaConf.register_new_resolver("gansweep.dirname", safe_dirname, replace=True)
OmegaConf.register_new_resolver("gansweep.job_id", _job_id, replace=True)
OmegaConf.register_new_resolver("gansweep.sweep_name", _sweep_name, replace=True)
OmegaConf.register_new_resolver("gansweep.job_dir", _job_dir, replace=True)

