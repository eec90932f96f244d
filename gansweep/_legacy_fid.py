"""TEMPORARY adapter (replaced by the gansweep.fid package's evaluator at merge)."""
from __future__ import annotations

import logging

from omegaconf import OmegaConf

from gansweep import evaluation, fid

log = logging.getLogger("gansweep.fid")


class FidEvaluator:
    def __init__(self, data_root, device, **fc):
        fc.pop("_target_", None)
        self.cfg = OmegaConf.create({"fid": fc, "dataset": {"root": str(data_root), "fetch": True}})
        self.fc, self.device = self.cfg.fid, device
        self.enabled = str(fc["extractor"]) != "none"
        self.best_key, self.lower_is_better = (evaluation.direction_key(self.fc) if self.enabled
                                               else (None, True))
        self.num_samples = fc["num_samples"]

    def preflight(self):
        fid.preflight(self.fc)

    def due(self, epochs_done):
        every = self.fc.every_epochs
        return bool(self.enabled and every and epochs_done % every == 0)

    def __call__(self, sample):
        if not self.enabled:
            return {}
        cfg, fc = self.cfg, self.fc
        name = fid.metric_name(str(fc.extractor))
        objective_metric = evaluation.metric_key(str(fc.get("objective") or "fid"), str(fc.extractor))
        gen = lambda n: (fid.quantize if fc.get("quantize", True) else (lambda x: x))(sample(n).float().cpu())
        try:
            result = evaluation.evaluate(gen, cfg, self.device)
        except fid.FIDError as exc:
            log.error("%s failed: %s", name, exc)
            return {name: float("nan"), "objective": float("nan"), "objective_metric": objective_metric,
                    "fid": {"extractor": str(fc.extractor), "error": str(exc)}}
        details = result.pop("details")
        log.info("%s (%d samples vs %d reference images)",
                 ", ".join(f"{k} = {v:.4g}" for k, v in result.items()), details["num_samples"],
                 details["ref_count"])
        if name in result:
            cached = fid.floor(details["extractor"], fc.num_samples, fc.ref_limit,
                               cfg.dataset.root, fc.cache_dir, self.device, compute=False)
            if cached:
                details["floor"] = cached[name]
        floors = evaluation.floor(cfg, self.device, compute=False)
        if floors:
            details["floors"] = {k: v for k, v in floors.items() if k != "details"}
        out = {**result, "objective": evaluation.objective(result, fc),
               "objective_metric": objective_metric, "fid": details}
        if "floor" in details:
            out[f"floor_{details['extractor']}"] = details["floor"]
        for key, value in details.get("floors", {}).items():
            if not key.startswith("fid_"):
                out[f"floor_{key}"] = value
        return out
