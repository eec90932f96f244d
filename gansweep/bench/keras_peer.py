"""The seed's G/D training step rebuilt in Keras 3 (TensorFlow backend): the bench's yardstick.

``gansweep-bench --peer keras`` times this step interleaved with ours. The layers are the
seed's list (docs/study.md, "Networks") in ``channels_last``, the layout TensorFlow's CPU
kernels are built for (the seed's ``channels_first`` makes TF transpose around every conv on
a CPU, which would flatter us); BatchNormalization therefore normalises the 64 channels after
the conv rather than the seed's 14 image columns, the same amount of work. One step is the
seed's loop body (docs/study.md, "Training loop"):

1. ``fakes = G.predict_on_batch(z)`` (inference mode);
2. ``D.train_on_batch(concat(real, fakes), targets)``: standard GAN 1/0 labels with
   ``binary_crossentropy`` on D's raw output; Coulomb GAN the Plummer potential (computed in
   float64 with NumPy, one matrix product) with ``mse``;
3. ``GD.train_on_batch(z', ...)`` on the combined model with D frozen: standard GAN against
   label 1, Coulomb GAN minimising mean D(G(z')).

Keras Adam with beta_1 = 0.5 and the config's lr; Keras 2.1's ``decay`` is the
``InverseTimeDecay`` schedule lr / (1 + decay t). Install with ``pip install
'gansweep[keras-peer]'`` (tensorflow-cpu).
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

INSTALL_HINT = "install it with: pip install 'gansweep[keras-peer]' (tensorflow-cpu)"


def import_tensorflow(threads: int | None = None):
    """TensorFlow with Keras 3 on its TF backend and ``threads`` intra-op threads (set before
    TF creates its thread pools, i.e. before the first op). A clear ImportError if missing."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # grappler's harmless remapper notes
    try:  # TensorFlow is optional (gansweep[keras-peer]): loaded by the peer alone
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(f"the Keras peer needs TensorFlow ({error}); {INSTALL_HINT}") from None
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # pools already made by an earlier peer in this process
            pass
    return tf


def framework_version() -> str:
    """e.g. 'Keras 3.13.1 / TF 2.21.0' (imports TensorFlow)."""
    tf = import_tensorflow()
    import keras  # Keras 3 comes with TensorFlow, which import_tensorflow configured

    return f"Keras {keras.__version__} / TF {tf.__version__}"


def tf_matmul_peak_gflops(n: int = 2048, repeats: int = 7, threads: int | None = None) -> float:
    """Median float32 GFLOP/s of TensorFlow's (oneDNN / Eigen) n x n x n matrix product."""
    tf = import_tensorflow(threads)
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        matmul(a, b).numpy()  # .numpy() waits for the result
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def plummer_potential(real: np.ndarray, fake: np.ndarray, eps: float, dim: int = 3,
                      ignore_self: bool = True) -> np.ndarray:
    """Potential at every point of concat(real, fake) (gansweep.kernels' definition), in
    float64 from one centred matrix product; shape (n_real + n_fake, 1)."""
    x = np.concatenate([real.reshape(len(real), -1), fake.reshape(len(fake), -1)])
    x = x.astype(np.float64)
    x -= x.mean(axis=0, keepdims=True)
    sq = np.square(x).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    k = (d2 + eps * eps) ** (-(dim - 2) / 2.0)
    n_real, n_fake = len(real), len(fake)
    own = float(ignore_self)
    if ignore_self:
        np.fill_diagonal(k, 0.0)
    n_r = np.full(len(x), float(n_real))
    n_f = np.full(len(x), float(n_fake))
    n_r[:n_real] -= own
    n_f[n_real:] -= own
    potential = k[:, n_real:].sum(1) / n_f - k[:, :n_real].sum(1) / n_r
    return potential[:, None].astype(np.float32)


def build_generator(keras, latent_dim: int = 100, momentum: float = 0.99, epsilon: float = 1e-3):
    layers = keras.layers
    bn = dict(momentum=momentum, epsilon=epsilon)
    return keras.Sequential([
        keras.Input((latent_dim,)),
        layers.Dense(1024), layers.BatchNormalization(**bn), layers.ReLU(),
        layers.Dense(128 * 7 * 7), layers.BatchNormalization(**bn), layers.ReLU(),
        layers.Reshape((7, 7, 128)),
        layers.UpSampling2D(2),
        layers.Conv2D(64, 5, padding="same"), layers.BatchNormalization(**bn), layers.ReLU(),
        layers.UpSampling2D(2),
        layers.Conv2D(1, 5, padding="same", activation="tanh"),
    ], name="generator")


def build_discriminator(keras, leaky_slope: float = 0.2, dropout: float = 0.5):
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(64, 5, strides=2, padding="same"), layers.LeakyReLU(leaky_slope),
        layers.Conv2D(128, 5, strides=2, padding="valid"), layers.LeakyReLU(leaky_slope),
        layers.Flatten(),
        layers.Dense(256), layers.LeakyReLU(leaky_slope), layers.Dropout(dropout),
        layers.Dense(1),
    ], name="discriminator")


class KerasPeer:
    """The seed's step for one gan_type in Keras 3; ``step(real)`` runs predict + D + G."""

    def __init__(self, gan_type: str, batch_size: int = 128, d_opt: dict | None = None,
                 g_opt: dict | None = None, eps: float = 1.0, dim: int = 3,
                 ignore_self: bool = True, seed: int = 0, threads: int | None = None):
        if gan_type not in ("standard", "coulomb"):
            raise ValueError(f"gan_type={gan_type!r}: the Keras peer knows standard and coulomb")
        tf = import_tensorflow(threads)
        import keras  # Keras 3 comes with TensorFlow, which import_tensorflow configured

        self.tf, self.keras = tf, keras
        self.gan_type, self.batch = gan_type, batch_size
        self.eps, self.dim, self.ignore_self = eps, dim, ignore_self
        keras.utils.set_random_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.g = build_generator(keras)
        self.d = build_discriminator(keras)

        def adam(opt):
            opt = {"lr": 1e-3, "beta_1": 0.5, "beta_2": 0.999, "epsilon": 1e-7, "decay": 0.0,
                   **(opt or {})}
            lr = opt["lr"]
            if opt["decay"]:
                lr = keras.optimizers.schedules.InverseTimeDecay(lr, 1, opt["decay"])
            return keras.optimizers.Adam(lr, beta_1=opt["beta_1"], beta_2=opt["beta_2"],
                                         epsilon=opt["epsilon"])

        if gan_type == "standard":
            d_loss, g_loss = "binary_crossentropy", "binary_crossentropy"
        else:
            d_loss = "mse"

            def g_loss(y_true, y_pred):  # the seed's Coulomb G loss: mean D(G(z))
                return keras.ops.mean(y_pred)
        self.d.compile(optimizer=adam(d_opt), loss=d_loss)
        self.d.trainable = False  # frozen inside the combined model (compiled after)
        z = keras.Input((100,))
        self.gd = keras.Model(z, self.d(self.g(z)), name="combined")
        self.gd.compile(optimizer=adam(g_opt), loss=g_loss)
        self.d.trainable = True
        self.ones = np.ones((batch_size, 1), np.float32)
        self.labels = np.concatenate([self.ones, np.zeros((batch_size, 1), np.float32)])
        self.t = 0

    def noise(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.batch, 100)).astype(np.float32)

    def eps_now(self) -> float:
        return self.eps * 2.0 ** (-self.t / 5000.0)

    def step(self, real: np.ndarray) -> tuple[float, float]:
        """One training step on ``real`` (N, 28, 28, 1) float32 in [-1, 1]; (d_loss, g_loss)."""
        fakes = self.g.predict_on_batch(self.noise())
        if self.gan_type == "standard":
            targets = self.labels
        else:
            targets = plummer_potential(real, fakes, self.eps_now(), self.dim, self.ignore_self)
        d_loss = self.d.train_on_batch(np.concatenate([real, fakes]), targets)
        g_loss = self.gd.train_on_batch(self.noise(), self.ones)
        self.t += 1
        return float(d_loss), float(g_loss)


def from_config(cfg, threads: int | None = None) -> KerasPeer:
    """The peer for a composed ``gansweep-train`` config (gan_type, batch, optimiser, kernel)."""
    def opt(side):
        return {k: float(side[k]) for k in ("lr", "beta_1", "beta_2", "epsilon", "decay")}
    return KerasPeer(str(cfg.gan_type.name), int(cfg.trainer.batch_size), opt(cfg.optimizer.d),
                     opt(cfg.optimizer.g), float(cfg.kernel.eps), int(cfg.kernel.dim),
                     bool(cfg.kernel.ignore_self_potential), int(cfg.seed), threads)
