"""gansweep's successive-halving sweeper as a Hydra plugin: ``hydra/sweeper=halving``.

Hydra instantiates plugins from the ``hydra_plugins`` package only; the logic lives in
gansweep.sweep.halving (no torch: a plugin scan in any Hydra app loads this module). gansweep's
config tree registers the class with Hydra too (conf/__init__.py), for an editable install,
whose import hook Hydra's plugin scan cannot walk.
"""

from hydra.core.config_store import ConfigStore

from gansweep.sweep.halving import HalvingSweeperBase, HalvingSweeperConf


class HalvingSweeper(HalvingSweeperBase):
    """Successive halving over the basic sweeper's grid (gansweep.sweep.halving)."""


ConfigStore.instance().store(group="hydra/sweeper", name="halving", node=HalvingSweeperConf,
                             provider="gansweep")
