"""gansweep's packed launcher as a Hydra plugin: ``hydra/launcher=packed``.

Hydra instantiates plugins from the ``hydra_plugins`` package only; the logic lives in
gansweep.sweep.packed (no torch at import: a plugin scan in any Hydra app loads this module).
gansweep's config tree registers the class with Hydra too (conf/__init__.py), for an editable
install, whose import hook Hydra's plugin scan cannot walk.
"""

from hydra.core.config_store import ConfigStore

from gansweep.sweep.packed import PackedLauncherBase, PackedLauncherConf


class PackedLauncher(PackedLauncherBase):
    """Compatible jobs trained as one fused model (gansweep.sweep.packed)."""


ConfigStore.instance().store(group="hydra/launcher", name="packed", node=PackedLauncherConf,
                             provider="gansweep")
