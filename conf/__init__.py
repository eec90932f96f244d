"""The config tree (pkg://gansweep.conf). Importing it registers the dataclass schemas its
YAML files name (``/schema/<group>/<option>``), the resolvers that name its output dirs
(gansweep.runs.dirs) and the ``hydra/sweeper=halving`` and ``hydra/launcher=packed`` plugins, so Hydra's Compose API and
``gansweep-train`` work with nothing imported first:

    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=seed_coulomb_1"])
"""

from hydra.core.plugins import Plugins

from gansweep import schema  # noqa: F401 - the schemas and the dir-name resolvers
from gansweep.runs import dirs
from hydra_plugins.gansweep_halving import HalvingSweeper
from hydra_plugins.gansweep_packed import PackedLauncher

# Hydra finds plugins by walking the hydra_plugins package, which it cannot do through the
# import hook of an editable install: register the plugins by hand (twice is harmless)
Plugins.instance().register(HalvingSweeper)
Plugins.instance().register(PackedLauncher)
