"""What a run's numbers depend on, as the config says it.

- ``fingerprint``: the settings that change what a run computes, step by step. A checkpoint
  made under another fingerprint is refused (it would continue a different run).
- ``identity``: the fingerprint plus what else a finished run's numbers depend on: its epoch
  budget and how its metrics are measured. A sweep's job dir is named by ``identity_hash``.

Neither covers the arithmetic a run happens to get (threads, device, ``model.impl``):
docs/reliability.md, "What changes the numbers".
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Settings that change what a run computes: a checkpoint made under other values is refused.
FINGERPRINT_KEYS = ("model", "optimizer", "kernel", "gan_type", "noise", "seed", "dataset",
                    "trainer.batch_size", "trainer.max_batches_per_epoch", "trainer.fake_mode")
# ...minus those that do not: where files live, the fast/reference implementation switch, how
# samples are pictured and scored (dataset.domain: which extractors may score them), and the
# kernel inside gan_type (the kernel group, above).
NOT_FINGERPRINTED = {"model": ("impl",), "kernel": ("impl",), "gan_type": ("kernel",),
                     "dataset": ("root", "fetch", "num_samples", "min_per_mode", "objective",
                                 "visualizer", "evaluator", "domain")}
# ...plus what else a finished run's numbers depend on: its epoch budget and how its FID is
# measured (not where files live or the FID batch size): a job's identity.
IDENTITY_KEYS = ("trainer.epochs", "fid")
NOT_IN_IDENTITY = {"fid": ("cache_dir", "fetch", "batch_size")}
# Where a job ran, not what: where files live, whether they may be fetched, how many torch
# threads it got. In neither, and never a setting: a table of runs does not split them on it
# (the same sweep relaunched from another checkout, or with trainer.threads=1 where it had
# joblib's n_jobs=2 set the threads, is one sweep). The job table shows each run's threads.
PLACEMENT = ("dataset.root", "dataset.fetch", "fid.cache_dir", "fid.fetch", "trainer.threads")


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


def differing(mine: dict, theirs: dict) -> list[str]:
    """The top-level keys whose values differ between two fingerprints or identities."""
    return sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
