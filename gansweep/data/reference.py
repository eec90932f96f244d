"""What a dataset gives the FID-family metrics: its own real samples, and what identifies them.

Generated samples are scored against the real samples of the dataset the run trained on,
never against a fixed dataset: a dataset class offers ``reference()`` returning a
``Reference`` (``gansweep.data.MnistReference``, ``gansweep.data.image_folder.FolderReference``,
``gansweep.data.mixtures.MixtureReference``), and the evaluator (``gansweep.fid``) computes its
statistics from ``load``. The statistics are cached per extractor and per ``key``, which
names the samples by their content (MNIST: the md5 of its idx file; a folder: the sha256 of
its decoded images), never by a dataset's name alone: a changed folder, or two folders of
one name, never share statistics.

``domain`` and ``shape`` say which extractors apply: one trained on one kind of image (LeNet,
an MNIST digit classifier: ``domain`` "digits", ``shape`` (1, 28, 28)) is refused for a
dataset of another kind (``gansweep.fid.evaluator.check_applies``).

A leaf: it imports nothing of gansweep, so every dataset module can use it.
"""

from __future__ import annotations

DIGITS = "digits"  # handwritten digits like MNIST's: what LeNet's features describe


class Reference:
    """Real samples to score generated ones against, as a dataset provides them.

    ``name``: the dataset, for messages. ``domain``: what the samples are, for extractors
    that describe one kind only (``DIGITS``; None: not said). ``shape``: one sample's shape
    ((1, 28, 28) for MNIST, (2,) for a 2-D mixture), known without loading anything.
    ``splits``: "train", the reference itself, and "test" where held-out samples exist (the
    real-data floors: what held-out real samples score against the reference)."""

    name: str = "dataset"
    domain: str | None = None
    shape: tuple[int, ...] | None = None
    splits: tuple[str, ...] = ("train",)

    def key(self, split: str = "train") -> str:
        """Names the samples of ``split`` by their content, for cache file names (letters,
        digits and ``-`` only)."""
        raise NotImplementedError

    def load(self, split: str = "train", limit: int | None = None):
        """The first ``limit`` samples of ``split`` (all when None) in [-1, 1], as a
        ``gansweep.data.Dataset`` whose ``checksum`` names them."""
        raise NotImplementedError

    def describe(self, split: str = "train") -> str:
        """How logs name the samples, e.g. "MNIST training images"."""
        return f"{self.name} {'held-out' if split == 'test' else 'reference'} samples"
