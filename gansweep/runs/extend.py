"""Budget extension: a job asked for more epochs than a finished run of the same configuration
continues that run instead of training from step 0.

Nothing a trajectory depends on changes with the budget: Keras' ``decay`` and the eps
half-life follow the step count, the shuffle and the noise come from the run's own generator
and evaluation never draws from the training streams. So the first E epochs of a longer run
are the E epochs already trained, and continuing the shorter run's ``checkpoints/last.pt``
gives the same numbers as training the longer budget from the start (tests/test_extend.py).
A setting that made a schedule depend on the total budget would resolve ``trainer.epochs``
into the fingerprint (e.g. ``total_steps: ${trainer.epochs}``): the two runs then differ in
more than the budget and are never matched.

The donor is a finished run (``status: ok``) beside the new job (the same sweep dir, or the
same parent dir of single runs), or the dir named by ``trainer.extend_from``, whose identity
equals the job's in everything but ``trainer.epochs`` and which trained fewer epochs. Its
files are linked into the job's dir (every file a run rewrites is replaced atomically, so the
donor's copy is never touched; ``metrics.jsonl``, which grows in place, is copied) and the
run resumes from them. The donor stays as it was: its results remain readable at their budget.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from gansweep import artifacts
from gansweep.runs import checkpoint
from gansweep.runs.checkpoint import ResumeError
from gansweep.identity import differing, fingerprint, identity

log = logging.getLogger(__name__)

BUDGET = "trainer.epochs"
RECORD = "extended_from.json"  # in the job dir: which run it continues, at what budget


def budget_free(ident: dict) -> dict:
    return {k: v for k, v in ident.items() if k != BUDGET}


def _finished(run_dir: Path) -> dict | None:
    dirs = artifacts.RunDir(run_dir)
    if not dirs.checkpoint.is_file():
        return None
    try:
        summary = json.loads(dirs.summary.read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("status") == "ok" else None


def _evaluation_rows(run_dir: Path) -> bool:
    """Whether the run logged evaluations into metrics.jsonl (rows without d_loss)."""
    path = artifacts.RunDir(run_dir).metrics
    return path.exists() and any('"d_loss"' not in line
                                 for line in path.read_text().splitlines() if line.strip())


def inexact_best(cfg: DictConfig, run_dir: Path, summary: dict) -> str | None:
    """Why continuing this run would not end where a run at the larger budget does, or None.
    Its final evaluation competes for best.pt; the longer run evaluates at that epoch only
    when ``fid.every_epochs`` divides it. If it does not, and the final evaluation beat
    earlier ones, the G those earlier evaluations kept is gone from best.pt."""
    done = int(summary["epochs_done"])
    every = OmegaConf.select(cfg, "fid.every_epochs", default=None)
    due = bool(every) and done % int(every) == 0
    if due or summary.get("best_epoch") != done - 1 or not _evaluation_rows(run_dir):
        return None
    return (f"its best.pt holds the G of its final evaluation (after epoch {done}), and a run of "
            f"trainer.epochs={cfg.trainer.epochs} with fid.every_epochs={every} evaluates no "
            "G there, so its best G (an earlier evaluation's) cannot be recovered")


def find_donor(cfg: DictConfig, out_dir: Path) -> tuple[Path, dict] | None:
    """The finished run with the most epochs below ``trainer.epochs`` whose identity is this
    job's but for the budget, among ``out_dir``'s siblings, and whose files say what its
    summary.json says (``check_files``); None if there is none."""
    want, epochs = budget_free(identity(cfg)), int(cfg.trainer.epochs)
    found = []
    for sibling in sorted(out_dir.parent.iterdir()) if out_dir.parent.is_dir() else ():
        if sibling == out_dir or not sibling.is_dir():
            continue
        summary = _finished(sibling)
        if summary is None or budget_free(summary.get("identity") or {}) != want:
            continue
        if int(summary.get("epochs_done", 0)) < epochs:
            if (why := inexact_best(cfg, sibling, summary)) is not None:
                log.info("not extending %s: %s", sibling, why)
                continue
            found.append((sibling, summary))
    for sibling, summary in sorted(found, key=lambda f: -int(f[1]["epochs_done"])):
        if (why := check_files(cfg, sibling, summary)) is None:
            return sibling, summary
        log.warning("not extending %s: %s", sibling, why)
    return None


def check_files(cfg: DictConfig, donor: Path, summary: dict) -> str | None:
    """Why the donor's checkpoints must not be adopted, or None. Its summary.json was
    matched to this job; the files are checked too, before any is linked into the job's dir
    (afterwards a mismatch would be blamed on the job's dir): last.pt must be the end of the
    run summary.json reports (epoch ``epochs_done``, batch 0, step ``batches_done``), and
    every checkpoint must be of this job's configuration, as resuming it will require. A
    hand-made or half-copied donor is caught here."""
    last = artifacts.RunDir(donor).checkpoint
    try:
        state = checkpoint.load(last)
    except (artifacts.CheckpointError, OSError) as exc:
        return f"its {last.name} cannot be read ({str(exc).split('. Fix:')[0]})"
    counters = state.get("counters") or {}
    at = (counters.get("epoch"), counters.get("batch"), counters.get("step"))
    done = (summary.get("epochs_done"), 0, summary.get("batches_done"))
    if at != done:
        return (f"its checkpoints/last.pt (epoch {at[0]}, batch {at[1]}, step {at[2]}) is not "
                f"the end of the run its summary.json reports ({done[0]} epochs, {done[2]} "
                "batches)")
    mine = fingerprint(cfg)
    for path in sorted((donor / "checkpoints").glob("*.pt")):
        try:
            theirs = (state if path == last else checkpoint.load(path)).get("fingerprint")
        except (artifacts.CheckpointError, OSError) as exc:
            return f"its {path.name} cannot be read ({str(exc).split('. Fix:')[0]})"
        if theirs is None and path != last:
            continue  # a best.pt written before checkpoints carried a fingerprint
        if theirs != mine:
            keys = ", ".join(_differing_keys(mine, theirs or {}))
            return (f"its checkpoints/{path.name} is of another configuration than its "
                    f"summary.json and this job (differs in: {keys})")
    return None


def explicit_donor(cfg: DictConfig, donor: Path, out_dir: Path) -> tuple[Path, dict]:
    """``trainer.extend_from``: that run, or a ResumeError that names what differs."""
    summary = _finished(donor)
    if summary is None:
        raise ResumeError(f"trainer.extend_from={donor} is no finished run (one has "
                          "summary.json with status ok and checkpoints/last.pt). Fix: name "
                          "the dir of a finished run, or drop trainer.extend_from.")
    mine, theirs = budget_free(identity(cfg)), budget_free(summary.get("identity") or {})
    if mine != theirs:
        keys = ", ".join(_differing_keys(mine, theirs))
        raise _refuse(out_dir, donor, f"its configuration differs in: {keys}")
    if int(summary["epochs_done"]) > int(cfg.trainer.epochs):
        raise _refuse(out_dir, donor, f"it trained {summary['epochs_done']} epochs, more "
                                      f"than trainer.epochs={cfg.trainer.epochs}")
    if (why := inexact_best(cfg, donor, summary)) is not None:
        raise _refuse(out_dir, donor, why)
    if (why := check_files(cfg, donor, summary)) is not None:
        raise _refuse(out_dir, donor, why, f"give {donor} back the checkpoints of the run its "
                                           "summary.json reports, name another finished run")
    return donor, summary


def _differing_keys(mine: dict, theirs: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ, down to the leaves: ``kernel.eps_half_life``."""
    keys = []
    for key in differing(mine, theirs):
        a, b = mine.get(key), theirs.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differing_keys(a, b, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _refuse(out_dir: Path, donor: Path, why: str,
            fix: str = "extend a run of the same configuration") -> ResumeError:
    return ResumeError(f"cannot extend {donor} into {out_dir}: {why}. Fix: {fix}, or drop "
                       "trainer.extend_from to train from step 0.")


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` becomes ``source``'s file: a hard link, or (another filesystem) a copy
    renamed into place, so a kill never leaves half a file; what was there goes first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed
        artifacts.atomic_write(target, lambda handle: handle.write(source.read_bytes()))


def adopt(donor: Path, summary: dict, out_dir: Path) -> None:
    """The donor's checkpoints, sample grids and metrics.jsonl into ``out_dir``, and a record
    of where they came from, marked complete last: a job killed part-way adopts again. The
    donor's final grid is left: the run draws its own."""
    src, dst = artifacts.RunDir(donor), artifacts.RunDir(out_dir)
    record = {"run": str(donor.resolve()), "epochs": summary["epochs_done"],
              "batches": summary["batches_done"]}
    artifacts.write_json({**record, "complete": False}, out_dir / RECORD)
    for path in sorted(src.samples.glob("[0-9]*_[0-9]*.png")):
        link_or_copy(path, dst.samples / path.name)
    if src.metrics.exists():
        artifacts.atomic_write(dst.metrics, lambda handle: handle.write(src.metrics.read_bytes()))
    for path in sorted((donor / "checkpoints").glob("*.pt")):  # last.pt: the resume point
        link_or_copy(path, out_dir / "checkpoints" / path.name)
    artifacts.write_json({**record, "complete": True}, out_dir / RECORD)
    log.info("extending %s (%d epochs done) to %s", donor, summary["epochs_done"], out_dir)


def adopted(out_dir: Path) -> bool | None:
    """True: the dir holds a complete adoption; False: one a kill interrupted; None: none."""
    try:
        return bool(json.loads((out_dir / RECORD).read_text()).get("complete", True))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return False


def prepare(cfg: DictConfig, out_dir: Path) -> Path | None:
    """Before a job trains in an empty ``out_dir``: adopt a donor if there is one (or the one
    ``trainer.extend_from`` names). Returns the donor's dir, or None (train from step 0)."""
    if str(cfg.trainer.resume) == "never":
        (out_dir / RECORD).unlink(missing_ok=True)  # a run from step 0 continues nothing
        return None
    state = adopted(out_dir)
    if state is None and artifacts.RunDir(out_dir).checkpoint.exists() or state:
        return None  # its own run, or a complete adoption: resume it
    named = cfg.trainer.get("extend_from")
    found = explicit_donor(cfg, Path(named), out_dir) if named else find_donor(cfg, out_dir)
    if found is None:
        return None
    donor, summary = found
    adopt(donor, summary, out_dir)  # only finished files, each replaced whole: no lock taken
    return donor
