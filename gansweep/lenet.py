"""A small MNIST classifier whose penultimate features give a fast, MNIST-domain FID.

The weights ship inside the package (``gansweep/assets/lenet_mnist.pt``) next to
``lenet_mnist.json``, which records their sha256, the test accuracy and the exact command
that trained them (``gansweep-fid train-classifier``; deterministic on CPU for a given torch
build). FIDs on these features are *not* Inception FIDs: they are reported as ``fid_lenet``.
The record is restated in docs/provenance.md, "The shipped LeNet".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ASSETS = Path(__file__).resolve().parent / "assets"
WEIGHTS = ASSETS / "lenet_mnist.pt"
RECORD = ASSETS / "lenet_mnist.json"
FEATURE_DIM = 128


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
    if not path.is_file():
        raise FileNotFoundError(
            f"LeNet weights {path} are missing (they ship with the package). "
            "Fix: reinstall gansweep, or retrain with `gansweep-fid train-classifier`.")
    model = LeNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.requires_grad_(False)
    return model.eval().to(device)


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
          lr: float = 1e-3, seed: int = 0, log=print) -> LeNet:
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
        log(f"epoch {epoch + 1}/{epochs}: mean loss {running / (b + 1):.4f} "
            f"({time.perf_counter() - start:.0f}s)")
    return model.eval()
