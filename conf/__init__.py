"""The config tree (pkg://gansweep.conf). Importing it registers the dataclass schemas its
YAML files name (``/schema/<group>/<option>``) and the resolvers that name its output dirs
(gansweep.dirs), so Hydra's Compose API works with nothing imported first:

    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=seed_coulomb_1"])
"""

from gansweep import dirs, schema  # noqa: F401 - the schemas and the dir-name resolvers
