"""The dataset group's schemas (conf/dataset/): MNIST, the 2-D mixtures and a folder of
images. Torch-free, like every schema: a check that needs the dataset's code imports it
when it runs, not when a config is composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import MISSING

from gansweep.checks import Checked, Choice, at_least_one, positive, require


@dataclass
class MnistConfig(Checked):
    _target_: str = MISSING
    name: str = MISSING
    root: str = MISSING
    fetch: bool = MISSING
    limit: Optional[int] = MISSING
    visualizer: Any = MISSING  # null: an image grid (gansweep.pictures.ImageGrid)
    evaluator: Any = MISSING  # null: the `fid` group's evaluator

    def check(self) -> None:
        at_least_one(self, "limit", null="all images")


class MixtureName(Choice):
    ring8 = "ring8"
    grid25 = "grid25"


@dataclass
class MixtureConfig(Checked):
    _target_: str = MISSING
    name: MixtureName = MISSING
    size: int = MISSING  # training points, drawn once with the run's seed
    modes: int = MISSING
    radius: float = MISSING  # ring8
    spacing: float = MISSING  # grid25
    std: float = MISSING
    num_samples: int = MISSING  # generated points scored at the end
    min_per_mode: int = MISSING  # high-quality points a mode needs to count as covered
    objective: str = MISSING  # gansweep.data.mixtures.ModeMetrics.OBJECTIVES
    visualizer: Any = MISSING  # null: gansweep.data.mixtures.Scatter
    evaluator: Any = MISSING  # null: gansweep.data.mixtures.ModeMetrics

    def check(self) -> None:
        at_least_one(self, "size", "modes", "num_samples", "min_per_mode")
        positive(self, "std")
        # torch: at check time only, so that composing a config imports none
        from gansweep.data.mixtures import ModeMetrics

        require(self.objective in ModeMetrics.OBJECTIVES, "objective", self.objective,
                f"must be one of {', '.join(ModeMetrics.OBJECTIVES)}")


@dataclass
class ImageFolderConfig(Checked):
    """``dataset=image_folder`` (gansweep.data.image_folder.ImageFolder)."""

    _target_: str = MISSING
    name: str = MISSING
    path: Optional[str] = MISSING  # required at run time (the dataset names the fix)
    channels: int = MISSING
    size: int = MISSING
    limit: Optional[int] = MISSING
    domain: Optional[str] = MISSING  # "digits": fid=lenet applies (gansweep.data.reference)
    visualizer: Any = MISSING  # null: an image grid (gansweep.pictures.ImageGrid)
    evaluator: Any = MISSING  # null: the `fid` group's evaluator

    def check(self) -> None:
        require(self.channels in (1, 3), "channels", self.channels, "must be 1 (gray) or 3 (RGB)")
        at_least_one(self, "size")
        at_least_one(self, "limit", null="all images")


SCHEMAS = (
    ("dataset", "mnist", MnistConfig),
    ("dataset", "mixture", MixtureConfig),
    ("dataset", "image_folder", ImageFolderConfig),
)
