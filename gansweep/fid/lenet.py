"""A small MNIST classifier whose penultimate features give a fast, MNIST-domain FID.

The weights ship inside the package (``gansweep/fid/assets/lenet_mnist.pt``) next to
``lenet_mnist.json``, which records their sha256 (also the registry entry's, checked on every
load), the test accuracy and the command that trained them (``gansweep-fid
train-classifier``, the same as ``gansweep-lenet train``; deterministic on CPU for a given
torch build). FIDs on these features are *not* Inception FIDs: they are reported as
``fid_lenet``. The record is restated in docs/provenance.md, "The shipped LeNet".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gansweep.data.mnist import load_mnist
from gansweep.data.download import sha256_file
from gansweep.fid.extractors import FeatureExtractor
from gansweep.fid.registry import BUILTIN

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS = ASSETS / "lenet_mnist.pt"
RECORD = ASSETS / "lenet_mnist.json"
FEATURE_DIM = BUILTIN["lenet"].dim


class LeNet(nn.Module):
    """conv5x5(16)-pool-conv5x5(32)-pool-fc(128)-fc(10); input (N,1,28,28) in [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)
        self.dropout = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate (post-ReLU fc1) features, (N, 128)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def load_lenet(device: torch.device | str = "cpu", path: Path = WEIGHTS) -> LeNet:
    """The shipped classifier (its sha256 checked against the registry's) in eval mode."""
    fix = "Fix: reinstall gansweep, or retrain with `gansweep-lenet train`."
    if not path.is_file():
        raise FileNotFoundError(f"LeNet weights {path} are missing (they ship with the "
                                f"package). {fix}")
    if path == WEIGHTS and (actual := sha256_file(path)) != BUILTIN["lenet"].sha256:
        raise ValueError(f"LeNet weights {path} are corrupt: sha256 {actual}, expected "
                         f"{BUILTIN['lenet'].sha256}. {fix}")
    model = LeNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.requires_grad_(False)
    return model.eval().to(device)


class LeNetFeatures(FeatureExtractor):
    """``fid=lenet``: penultimate features (128-d) of the shipped MNIST classifier, which was
    trained on [-1, 1] images: they go in as they are. Seconds on a CPU; comparable only
    with other fid_lenet values."""

    info = BUILTIN["lenet"]

    def load(self, device, cache_dir, fetch, precision):
        return load_lenet(device), str(WEIGHTS)

    def features(self, model, images):
        return model.features(images)

    def classify(self, model, features):
        """Digit probabilities from the penultimate features (Dropout off: eval mode)."""
        return torch.softmax(model.fc2(features), dim=1)


def record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.is_file() else {}


@torch.inference_mode()
def accuracy(model: LeNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += (model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum().item()
    return correct / len(x)


def train(train_x: torch.Tensor, train_y: torch.Tensor, epochs: int = 4, batch_size: int = 128,
          lr: float = 1e-3, seed: int = 0) -> LeNet:
    """Adam, cross-entropy, learning rate decayed linearly to 0 per batch, fixed seed,
    shuffled each epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(train_x)
    total = epochs * ((n + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / total)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=generator)
        start, running = time.perf_counter(), 0.0
        for b, i in enumerate(range(0, n, batch_size)):
            index = perm[i:i + batch_size]
            loss = F.cross_entropy(model(train_x[index]), train_y[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            running += loss.item()
        log.info("epoch %d/%d: mean loss %.4f (%.0fs)", epoch + 1, epochs, running / (b + 1),
                 time.perf_counter() - start)
    return model.eval()


# ----------------------------------------------------------------------------- CLI
def _cmd_train(args, argv: list[str]) -> int:
    """Train, write the weights and their record; fail below 99% test accuracy."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(args.threads)
    train_set = load_mnist(args.root, "train")
    test = load_mnist(args.root, "test")
    t0 = time.perf_counter()
    model = train(train_set.x, train_set.labels, args.epochs, args.batch_size, args.lr, args.seed)
    acc = accuracy(model, test.x, test.labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS.name
    torch.save(model.state_dict(), weights)
    result = {
        "test_accuracy": acc, "test_images": len(test),
        "command": "gansweep-lenet " + " ".join(shlex.quote(a) for a in argv),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "threads": args.threads, "optimizer": "Adam, lr decayed linearly to 0 per batch",
        "torch": torch.__version__, "train_seconds": round(time.perf_counter() - t0, 1),
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "feature_dim": FEATURE_DIM, "architecture": LeNet.__doc__,
    }
    (out / RECORD.name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"test accuracy {acc:.4%}; wrote {weights} and {out / RECORD.name}")
    if acc < 0.99:
        print("error: test accuracy below 99.0%", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``gansweep-lenet train``: retrain the classifier shipped for fid_lenet."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog="gansweep-lenet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the LeNet shipped for fid_lenet")
    p.add_argument("--root", default="data")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ASSETS))
    args = parser.parse_args(argv)
    try:
        return _cmd_train(args, argv)
    except (RuntimeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
