"""The config tree (pkg://gansweep.conf). Importing it registers the dataclass schemas that
its YAML files name (``/schema/<group>/<option>``), so Hydra's Compose API works with nothing imported first:

    with initialize_config_module(config_module="gansweep.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=["+experiment=seed_coulomb_1"])
"""

from gansweep import schema  # noqa: F401 - registers the schemas in Hydra's ConfigStore
