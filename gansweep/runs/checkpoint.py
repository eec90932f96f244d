"""The files that carry a run across crashes, and the rules for continuing one.

- ``checkpoints/last.pt``: G, D, both optimisers, counters, the epoch's shuffle and every RNG
  state (``trainer.Run.state_dict``: the run's own, ``gansweep.gan.state``), written atomically at batch boundaries; ``load`` reads
  it back and ``check_resumable`` says whether this config may continue it.
- ``checkpoints/best.pt``: G and D of the best evaluation so far (``best_record``,
  ``save_best``).

These functions take plain values, never the run: ``gansweep.runs.trainer.Run`` owns its state
and calls them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from gansweep import artifacts, schema
from gansweep.fid.metrics import is_better
from gansweep.gan.state import STREAMS_VERSION, Counters  # noqa: F401 - re-exported
from gansweep.identity import differing, fingerprint


class Diverged(RuntimeError):
    """A loss or a weight became NaN or Inf."""


class ResumeError(RuntimeError):
    """The output dir holds a checkpoint that this config cannot continue."""


def refuse_dir(out_dir: Path, what: str) -> ResumeError:
    return ResumeError(f"{out_dir} holds {what}. Fix: use another output dir (a sweep's default "
                       "job dirs are named by a hash of the config), or trainer.resume=never "
                       "to start over there.")


def load(path: Path) -> dict:
    """A checkpoint's tensors and plain containers (``artifacts.load_checkpoint``). Checkpoints
    written before configs were stored as plain strings hold the schema's str enums; those
    are safe to rebuild (an Enum from its value runs no code), so they are allowed."""
    return artifacts.load_checkpoint(path, safe_globals=schema.CHECKPOINT_GLOBALS)


def weights_finite(*modules: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for module in modules
                for t in module.state_dict().values() if t.is_floating_point())


def check_device(state: dict, root: Path, device_type: str, precision: str) -> None:
    """Refuse a checkpoint made on another device type or at another precision: CPU and CUDA
    noise generators have different states (and streams), and TF32 changes the numbers, so
    continuing would silently make a different run."""
    saved_type = state.get("device_type") or ("cuda" if "cuda" in state["rng"] else "cpu")
    saved_precision = state.get("precision", precision)
    if (saved_type, saved_precision) != (device_type, precision):
        raise ResumeError(
            f"{root} holds a checkpoint made on {saved_type} ({saved_precision}) "
            f"but this run is on {device_type} ({precision}); the noise "
            "generator's state and the arithmetic do not carry over. Fix: resume with "
            f"trainer.device={saved_type}"
            + (" trainer.tf32=true" if saved_precision == "tf32" else "")
            + ", or use another output dir (or trainer.resume=never) to start over.")


def check_streams(state: dict, root: Path, device_type: str) -> None:
    """Refuse a CUDA checkpoint made before a run drew its Dropout masks from its own
    generator: on CUDA those masks came from torch's fused dropout kernel on the global
    stream, which a generator cannot continue (on a CPU the streams are the same)."""
    if device_type == "cuda" and state.get("streams", 1) < STREAMS_VERSION:
        raise ResumeError(
            f"{root} holds a CUDA checkpoint of an earlier release, whose Dropout masks came "
            "from torch's global CUDA stream; this release draws them from the run's own "
            "generator, so continuing it would make a different run. Fix: "
            "trainer.resume=never (or another output dir) to train it again, or finish it "
            "with the release that started it.")


def check_resumable(state: dict, cfg: DictConfig, root: Path, device_type: str,
                    precision: str) -> None:
    """Raise ResumeError unless ``cfg`` may continue the checkpoint ``state``: the same
    fingerprint, device type and precision, and no more epochs done than asked for."""
    mine, theirs = fingerprint(cfg), state.get("fingerprint") or {}
    if theirs != mine:
        raise refuse_dir(root, "a checkpoint of a different configuration "
                               f"(differs in: {', '.join(differing(mine, theirs))})")
    check_device(state, root, device_type, precision)
    check_streams(state, root, device_type)
    if state["counters"]["epoch"] > cfg.trainer.epochs:
        raise refuse_dir(root, f"a run trained for {state['counters']['epoch']} "
                               f"epochs; this config asks for trainer.epochs={cfg.trainer.epochs}")


def best_record(values: dict, best: dict | None, key: str | None, lower: bool, epoch: int,
                step: int) -> dict | None:
    """The new best evaluation if ``values[key]`` beats ``best`` (the record checkpoints and
    summaries keep: metric, direction, value, epoch, step and that evaluation's metrics of
    the same extractor), else None."""
    if key is None or key not in values or not is_better(
            values[key], best["value"] if best else None, lower):
        return None
    suffix = "_" + key.rsplit("_", 1)[-1]  # the extractor's metrics: fid_lenet, kid_lenet, ...
    return {"metric": key, "lower_is_better": lower, "value": values[key], "epoch": epoch,
            "step": step, "values": {k: v for k, v in values.items() if k.endswith(suffix)}}


def save_best(path: Path, g: torch.nn.Module, d: torch.nn.Module, best: dict,
              cfg: DictConfig) -> None:
    """checkpoints/best.pt: G and D (plain tensors, like last.pt), the record, the fingerprint."""
    artifacts.save_checkpoint({"generator": g.state_dict(), "discriminator": d.state_dict(),
                               "best": best, "fingerprint": fingerprint(cfg)}, path)
