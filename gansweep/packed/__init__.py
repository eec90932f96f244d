"""Packed runs: N runs of one architecture trained as one fused model.

The seven presets of the study share one network and batch size and differ only in scalars
(learning rates, Keras ``decay``, the kernel's eps), so N runs can step as one model whose
every parameter carries a leading run axis: convolutions grouped over runs (or batched
matrix products), Dense layers as ``baddbmm``, BatchNorm with each run's own batch and
moving statistics, Dropout on each run's own masks, Keras' Adam with per-run
hyperparameters, and the loss summed over runs so that each run gets its own gradient.

Modules, from the bottom up: ``layers`` (fused layers), ``models`` (``PackedDCGAN``,
``PackedMLPGAN``, built from and written back into N single-run GANs), ``optim``
(``PackedKerasAdam``), ``objectives`` (per-run standard and Coulomb losses), ``streams``
(each run's data order, noise and Dropout masks, drawn as the run alone draws them) and
``step`` (``packed_train_step``, the fused ``gansweep.step.train_step``).
"""
