"""``gansweep-eval``: score finished runs again, with other evaluation settings, without
training them again.

    gansweep-eval outputs/multirun/<sweep> fid=inception          # the study's metric
    gansweep-eval <run dir> fid.num_samples=10000 fid.metrics=[fid,kid]
    gansweep-eval <sweep> <other sweep> fid=inception --which final

For every finished run (``status: ok``) under the given dirs, the final G (``last.pt``) and
the best G (``best.pt``) are rebuilt from the run's own config and scored by the evaluator
the ``fid`` overrides compose (the options and keys of the ``fid`` group), on the samples
the trainer would draw: noise seeded by the run's seed + the evaluator's offset, in the same
chunks, so scoring a final G with the run's own settings reproduces its summary's numbers.
Each result goes to ``<run>/evals/<final|best>_<extractor>_<hash>.json``, the hash being
that of the evaluation settings (``fid`` as it enters a job's identity); the training record
(summary.json, metrics.jsonl, checkpoints) is never written. A result already there is kept
while it is of the checkpoint there now (its epoch, step and sha256; ``--force`` computes it
again): a run extended in place since gets its new G scored, never the old one's number. The
scoring runs on the torch threads the run recorded (summary.json ``torch_threads``), since
float sums over another thread count differ in the last bits. The sweep's table is rebuilt
with the new columns. A run that cannot be scored (a damaged checkpoint, a read-only dir) is
named in one line and the others are still scored; the exit status says whether any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import inspect
import json
import logging
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.errors import HydraException, InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gansweep import artifacts, schema
from gansweep.runs import checkpoint
from gansweep.device import configure_backends, isolated_rng, resolve_device
from gansweep.fid.evaluator import NotApplicable, reference_of
from gansweep.identity import NOT_IN_IDENTITY
from gansweep.gan.noise import sample_generator
from gansweep.report.aggregate import OutputError, aggregate
from gansweep.report.studies import StudyError
from gansweep.report.rescores import checkpoint_stamp
from gansweep.report.table import find_jobs, load_summary, read_summary

log = logging.getLogger(__name__)

EVALS = "evals"
WHICH = {"final": "last.pt", "best": "best.pt"}


class RescoreError(RuntimeError):
    """A run that cannot be scored (no G, another kind of dataset); the message says why."""


def eval_settings(fid_cfg: DictConfig) -> dict:
    """The settings that decide the numbers (``fid`` as in a job's identity)."""
    settings = OmegaConf.to_container(fid_cfg, resolve=True)
    for key in NOT_IN_IDENTITY["fid"]:
        settings.pop(key, None)
    return json.loads(json.dumps(settings, default=str))


def settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]


def compose_fid(overrides: list[str]) -> DictConfig:
    """The ``fid`` group as ``gansweep-train`` would compose it with these overrides."""
    outside = [o for o in overrides if not o.lstrip("+~").startswith("fid")]
    if outside:
        raise SystemExit(f"error: gansweep-eval takes overrides of the fid group only (fid=..., "
                         f"fid.<key>=...), not {', '.join(outside)}. Fix: drop them; training "
                         "settings come from each run's own config.")
    try:
        with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
            fid_cfg = compose(config_name="train", overrides=overrides).fid
        schema.check_fid(fid_cfg)  # the checks a training run's fid settings get
    except (HydraException, OmegaConfBaseException) as exc:
        cause = f" ({str(exc.__cause__).splitlines()[0]})" if exc.__cause__ else ""
        raise SystemExit(f"error: {str(exc).splitlines()[0]}{cause}. Fix: an option of the fid "
                         "group (fid=lenet|inception|none) or a key it has") from None
    except schema.ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    for key in unknown_keys(fid_cfg):  # +fid.<typo>=...: refused now, not once per run
        near = difflib.get_close_matches(key, [k for k in fid_cfg if k != key], 1, 0.8)
        raise SystemExit(f"error: fid.{key} is not a setting of the fid group "
                         f"({fid_cfg._target_} takes no '{key}'). Fix: drop +fid.{key}=..."
                         + (f", or mean fid.{near[0]}" if near else ""))
    return fid_cfg


def unknown_keys(fid_cfg: DictConfig) -> list[str]:
    """Keys of ``fid_cfg`` its evaluator class does not take (none where it takes
    ``**kwargs`` or cannot be imported: instantiating it then says why)."""
    try:
        params = inspect.signature(get_object(str(fid_cfg._target_))).parameters
    except (ImportError, AttributeError, ValueError, TypeError, HydraException):
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return []
    return [k for k in fid_cfg if not str(k).startswith("_") and k not in params]


def checkpoint_state(run_dir: Path, which: str) -> dict:
    """The checkpoint of ``which`` (final: last.pt, best: best.pt); RescoreError, in one line
    naming the file and the fix, where it is missing, truncated or not plain tensors."""
    path = run_dir / "checkpoints" / WHICH[which]
    if not path.is_file():
        raise RescoreError(f"{run_dir} has no {which} G ({path.relative_to(run_dir)} is "
                           "missing)")
    try:
        return checkpoint.load(path)
    except artifacts.CheckpointError as exc:
        why = str(exc).split(" Fix:")[0]
        raise RescoreError(f"{run_dir}: {which} G not scored: {why} Fix: restore a good copy "
                           "of the file, or train the run again (delete its checkpoints/ and "
                           "relaunch its command)") from None


def position(state: dict, which: str) -> tuple[int | None, int | None]:
    """(epoch, step) of the G in a checkpoint, counted from 0 (the last epoch trained)."""
    where = state.get("best") if which == "best" else state.get("counters")
    epoch = (where or {}).get("epoch")
    step = (where or {}).get("step")
    if which == "final" and where:  # counters point at the next epoch to train
        epoch, step = where["epoch"] - 1, where["step"] - 1
    return epoch, step


def generator_of(run_dir: Path, cfg: DictConfig, which: str, device: torch.device,
                 state: dict | None = None):
    """(G in eval mode with the weights of ``which``, the checkpoint's epoch and step)."""
    state = checkpoint_state(run_dir, which) if state is None else state
    with isolated_rng(device):  # building the network draws initial weights
        gan = instantiate(cfg.model)
    g = gan.generator.to(device)
    g.load_state_dict(state["generator"])
    return (g.eval(), gan.latent_dim, *position(state, which))


def run_threads(summary: dict) -> int | None:
    """The torch threads the run's last start computed with (summary.json ``torch_threads``;
    older summaries: the config's ``trainer.threads``), None where neither says."""
    threads = summary.get("torch_threads")
    if threads is None:
        threads = ((summary.get("config") or {}).get("trainer") or {}).get("threads")
    return threads if isinstance(threads, int) and threads > 0 else None


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Torch on ``threads`` threads inside the block (unchanged for None), restored after."""
    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def stored(out: Path, epoch: int | None, step: int | None, stamp: dict) -> dict | None:
    """The stored result at ``out`` if it scored this checkpoint (the same epoch and step,
    and the same sha256 where the record names one), else None."""
    if not out.exists():
        return None
    try:
        record = json.loads(out.read_text())
    except (OSError, ValueError):
        log.warning("warning: %s cannot be read; scoring again", out)
        return None
    if not isinstance(record, dict):
        return None
    sha = (record.get("checkpoint") or {}).get("sha256")
    if (record.get("epoch"), record.get("step")) == (epoch, step) and sha in (None,
                                                                             stamp["sha256"]):
        return record
    log.info("%s: the stored %s result is of another G (step %s%s); scoring the one there now "
             "(step %s)", out.parent.parent.name, out.name.split("_")[0], record.get("step"),
             ", another checkpoint file" if sha and sha != stamp["sha256"] else "", step)
    return None


def reference_of_run(run_dir: Path, cfg: DictConfig):
    """The FID reference of the dataset a run trained on (its own config's); RescoreError
    where the fid group does not score that dataset (a 2-D mixture) or it cannot be built."""
    try:
        dataset = instantiate(cfg.dataset)
    except InstantiationException as exc:
        raise RescoreError(f"{run_dir}: its dataset cannot be built ({exc.__cause__ or exc}). "
                           "Fix: make the run's dataset available as it trained on it") from None
    if getattr(dataset, "evaluator", None) is not None:
        raise RescoreError(f"{run_dir} trained on {cfg.dataset.get('name')}: the fid group "
                           "scores image runs (mixtures have their own mode metrics)")
    try:
        return reference_of(dataset)
    except NotApplicable as exc:
        raise RescoreError(f"{run_dir}: {exc}") from None


def score(run_dir: Path, fid_cfg: DictConfig, which: str, device: torch.device,
          data_root: str | None = None, force: bool = False) -> dict:
    """One run's G (``final`` or ``best``) scored with ``fid_cfg``: the stored result of
    this checkpoint, or a new one written to ``<run>/evals/``, computed on the torch threads
    the run recorded. RescoreError, in one line, where it cannot be."""
    summary, unreadable = load_summary(run_dir)
    if unreadable or "config" not in (summary or {}):
        raise RescoreError(f"{run_dir}: {unreadable or 'summary.json records no config'}. "
                           "Fix: restore summary.json, or relaunch the run's command")
    cfg = OmegaConf.create(summary["config"])
    if data_root and "root" in cfg.dataset:  # --data-root: MNIST elsewhere
        cfg.dataset.root = data_root
    reference = reference_of_run(run_dir, cfg)
    settings = eval_settings(fid_cfg)
    digest = settings_hash(settings)
    out = run_dir / EVALS / f"{which}_{fid_cfg.extractor}_{digest}.json".replace("/", "-")
    state = checkpoint_state(run_dir, which)
    epoch, step = position(state, which)
    stamp = checkpoint_stamp(run_dir, which)
    if not force and (record := stored(out, epoch, step, stamp)) is not None:
        return record
    if (exc := artifacts.write_probe(out.parent)) is not None:  # before minutes of scoring
        raise RescoreError(f"{run_dir}: {which} G not scored: {out.parent} is not writable "
                           f"({exc.strerror or exc}). Fix: make the run dir writable "
                           "(its permissions, or a read-write mount), or score a copy of it")
    threads = run_threads(summary)
    with torch_threads(threads):  # the run's own float sums, to the bit
        try:
            evaluator = instantiate(fid_cfg, device=device,
                                    data_root=cfg.dataset.get("root", "data"),
                                    reference=reference)
        except InstantiationException as exc:
            raise RescoreError(f"{run_dir}: the fid settings build no evaluator "
                               f"({str(exc).strip().splitlines()[0]}). Fix: drop or correct "
                               "the fid override it names") from None
        evaluator.preflight()
        g, latent_dim, epoch, step = generator_of(run_dir, cfg, which, device, state)
        noise = instantiate(cfg.noise)

        def sample(n: int) -> torch.Tensor:  # the trainer's evaluation samples (Run.evaluate)
            return sample_generator(g, noise, latent_dim, n,
                                    int(cfg.seed) + evaluator.seed_offset, device,
                                    evaluator.sample_batch)

        t0 = time.perf_counter()
        with isolated_rng(device):
            result = evaluator(sample)
    record = {"which": which, "epoch": epoch, "step": step, "settings": settings,
              "hash": digest, "extractor": evaluator.extractor_name,
              "values": {k: v for k, v in result.items()
                         if k not in ("objective", "objective_metric", "fid")},
              "fid": result.get("fid"), "seconds": round(time.perf_counter() - t0, 3),
              "time": time.strftime("%Y-%m-%d %H:%M:%S"), "device": str(device),
              "torch_threads": threads or torch.get_num_threads(), "checkpoint": stamp}
    try:
        artifacts.write_json(record, out)
    except OSError as exc:
        shown = ", ".join(f"{k} {v:.6g}" for k, v in record["values"].items()
                          if isinstance(v, float) and not k.startswith("floor_"))
        raise RescoreError(f"{run_dir}: {which} G scored ({shown}) but not stored: {out} "
                           f"({exc.strerror or exc}). Fix: free space or permissions there "
                           "and run again") from None
    return record


def scorable(dirs: list[Path]) -> tuple[list[Path], list[str]]:
    """(finished runs with a final G under ``dirs``, why the others are left out). A dir named
    on the command line that is a run but cannot be scored stops everything, before any
    evaluation, with the reason and the fix."""
    runs, skipped = [], []
    for root in dirs:
        if not root.is_dir():
            raise SystemExit(f"error: {root} is not a directory. Fix: pass a run dir or a "
                             "sweep dir (outputs/multirun/...).")
        for run_dir in find_jobs(root):
            summary, unreadable = load_summary(run_dir)
            status = (summary or {}).get("status", "no summary.json")
            has_g = (run_dir / "checkpoints" / WHICH["final"]).is_file()
            if status == "ok" and has_g:
                runs.append(run_dir)
                continue
            why = (f"{run_dir}: {unreadable}" if unreadable else
                   f"{run_dir}: not finished (status {status})" if status != "ok" else
                   f"{run_dir}: no G to score (checkpoints/last.pt is missing)")
            if run_dir == root:
                raise SystemExit(f"error: {why}. Fix: finish the run first (run its command "
                                 "again), or score another run.")
            skipped.append(why)
    return runs, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gansweep-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("args", nargs="+", metavar="DIR|OVERRIDE",
                        help="run or sweep dirs, then fid overrides (fid=inception, fid.x=y)")
    parser.add_argument("--which", choices=("both", "final", "best"), default="both")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--data-root", default=None,
                        help="MNIST for the reference statistics (default: each run's own)")
    parser.add_argument("--force", action="store_true", help="compute stored results again")
    parser.add_argument("--no-table", dest="table", action="store_false",
                        help="do not rebuild the sweep dirs' tables")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # a sweep dir's name holds '=' too (outputs/multirun/seed=0,1,2_...): an existing path is a dir
    dirs = [Path(a) for a in args.args if "=" not in a or Path(a).exists()]
    overrides = [a for a in args.args if "=" in a and not Path(a).exists()]
    if not dirs:
        parser.error("name at least one run or sweep dir")
    fid_cfg = compose_fid(overrides)
    if str(fid_cfg.extractor) == "none":
        parser.error("fid=none scores nothing: name an extractor (fid=lenet, fid=inception)")
    runs, skipped = scorable(dirs)
    for why in skipped:
        log.warning("%s; skipped", why)
    device = resolve_device(args.device)
    configure_backends(device)  # float32 as in training (no TF32)
    which = ("final", "best") if args.which == "both" else (args.which,)
    problems, done = [], 0
    for run_dir in runs:
        for kind in which:
            if not (run_dir / "checkpoints" / WHICH[kind]).is_file():
                best_epoch = read_summary(run_dir).get("best_epoch")
                if kind == "best" and best_epoch is not None:  # chosen, then lost
                    missing = (f"{run_dir}: no best G to score: checkpoints/best.pt is "
                               f"missing, though summary.json records one (after epoch "
                               f"{best_epoch + 1}). Fix: restore the file, or --which final")
                    if args.which == "best":  # asked for by name: a failure
                        problems.append(missing)
                        log.error("error: %s", missing)
                    else:
                        log.warning("warning: %s", missing)
                    continue
                log.info("%s: no %s G (no evaluation chose one); skipped", run_dir, kind)
                continue
            try:
                record = score(run_dir, fid_cfg, kind, device, args.data_root, args.force)
            except RescoreError as exc:
                problems.append(str(exc))
                log.error("error: %s", exc)
                continue
            except (RuntimeError, ValueError, OSError) as exc:  # FIDError, WeightsError, ...
                first = (str(exc).strip().splitlines() or [""])[0]
                problems.append(f"{run_dir}: {kind} G not scored: {type(exc).__name__}: "
                                f"{first}")
                log.error("error: %s", problems[-1])
                continue
            done += 1
            shown = ", ".join(f"{k} {v:.4g}" for k, v in record["values"].items()
                              if isinstance(v, float) and not k.startswith("floor_"))
            when = ("" if record["epoch"] is None else  # records count epochs from 0
                    f" (after epoch {record['epoch'] + 1}, step {record['step']})")
            print(f"{run_dir.name} {kind}{when}: {shown}")
    if args.table:
        for root in dirs:
            if not (root / "summary.json").exists():
                try:
                    aggregate([root], echo=False)
                except (OutputError, FileNotFoundError, StudyError) as exc:
                    problems.append(f"table of {root} not rebuilt: {exc}")
                    log.error("error: %s", problems[-1])
    print(f"{done} evaluations under {', '.join(map(str, dirs))}; results in <run>/{EVALS}/")
    if problems:
        print(f"{len(problems)} failed:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
