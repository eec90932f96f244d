"""`gansweep-train`: a thin Hydra wrapper around ``gansweep.trainer.run``.

    gansweep-train +experiment=seed_coulomb_1
    gansweep-train -m '+experiment=glob(seed_*)' trainer=quick
    gansweep-train -m +experiment=seed_coulomb_1 kernel.eps=0.1,1,10 optimizer.d.lr=1e-3,1e-4
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gansweep import schema  # noqa: F401 - registers the config schemas with Hydra
from gansweep.trainer import run


@hydra.main(version_base="1.3", config_path="pkg://gansweep.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg, HydraConfig.get().runtime.output_dir)
    return summary.get("objective")


if __name__ == "__main__":
    main()
