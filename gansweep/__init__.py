"""gansweep: Hydra experiment harness for GAN hyperparameter sweeps."""

__version__ = "0.1.0"
