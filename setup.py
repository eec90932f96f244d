"""Package discovery (everything else is in pyproject.toml).

Every folder under gansweep/ and hydra_plugins/ ships as a package, and every folder under
conf/ as a package of gansweep.conf (the config groups are data-only folders): found here, never listed by
hand, so a new subpackage or config group cannot be left out of a wheel. setuptools'
``packages.find`` alone cannot do this, because conf/ is mapped to another name.
"""

from setuptools import find_namespace_packages, setup

SKIP = ["__pycache__", "*.__pycache__", "assets", "*.assets"]  # assets: package data

setup(packages=[
    *find_namespace_packages(include=["gansweep", "gansweep.*"], exclude=SKIP),
    # the successive-halving sweeper: Hydra looks for plugins in the hydra_plugins namespace
    *find_namespace_packages(include=["hydra_plugins.*"], exclude=SKIP),
    "gansweep.conf",
    *(f"gansweep.conf.{name}" for name in find_namespace_packages(where="conf", exclude=SKIP)),
])
