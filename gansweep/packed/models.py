"""``PackedDCGAN`` and ``PackedMLPGAN``: N single-run GANs of one architecture as one fused
model, built from the N ``gansweep.gan.models`` GAN objects themselves.

Building from the runs' own objects (their parameters and buffers stacked on a run axis)
gives each run of the pack the initial weights it has alone, whatever drew them. The
packed networks keep the single networks' state_dict keys (``fc1.weight`` is run n's
``fc1.weight`` at index n), so ``unstack`` writes the pack back into the N single modules
and ``load_from`` reads them in: a run's checkpoint keeps the single-run format, and a run
can be continued packed or alone either way.

Runs whose architectures differ in any way (latent_dim, BatchNorm settings, Dropout p, the
leaky slope, ``impl`` ...) cannot share a pack and are refused by name.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.gan.models import (GAN, MLP, Discriminator, FastGenerator, Generator, KerasBatchNorm,
                             RunDropout, SameConv2d)
from gansweep.packed.layers import (CONV_IMPLS, PackedBatchNorm, PackedConv2d, PackedDropout,
                                    PackedLinear, upsample2)

# the constructor settings each layer type keeps as attributes: what "one architecture" means
_SETTINGS = {
    KerasBatchNorm: ("axis", "momentum", "epsilon", "moving_var", "zero_debias"),
    nn.Linear: ("in_features", "out_features"),
    nn.Conv2d: ("in_channels", "out_channels", "kernel_size", "stride", "padding", "groups",
                "dilation"),
    SameConv2d: ("pad",),
    RunDropout: ("p",),
    nn.Dropout: ("p",),
    nn.LeakyReLU: ("negative_slope",),
    Discriminator: ("leaky_slope",),
    GAN: ("latent_dim",),
}


def architecture(gan: nn.Module) -> dict[str, object]:
    """Everything that fixes a GAN's computation apart from its weights: each submodule's
    type and settings, and the shapes of its parameters and buffers."""
    found: dict[str, object] = {}
    for name, module in gan.named_modules():
        prefix = name or "<gan>"
        found[f"{prefix} (type)"] = type(module).__name__
        for kind, settings in _SETTINGS.items():
            if isinstance(module, kind):
                for setting in settings:
                    found[f"{prefix}.{setting}"] = getattr(module, setting)
    for name, tensor in gan.state_dict().items():
        found[f"{name} (shape)"] = tuple(tensor.shape)
    return found


def check_one_architecture(gans: list[nn.Module]) -> None:
    """ValueError naming the first setting in which a run differs from run 0."""
    if not gans:
        raise ValueError("error: a pack needs at least one run. Fix: pass N >= 1 GANs")
    first = architecture(gans[0])
    for index, gan in enumerate(gans[1:], start=1):
        other = architecture(gan)
        for key in sorted(first.keys() | other.keys()):
            if first.get(key) != other.get(key):
                raise ValueError(
                    f"error: run {index} differs from run 0 in {key} ({other.get(key)!r} vs "
                    f"{first.get(key)!r}); runs of one pack share one architecture. Fix: pack "
                    "runs whose model settings match and train the others in another pack")


class PackedGenerator(nn.Module):
    """N ``Generator``s (or ``FastGenerator``s, computed as they are: folded upsample+conv):
    z ``[N, B, latent]`` -> images ``[N, B, 1, 28, 28]``."""

    def __init__(self, singles: list[Generator], conv_impl: str = "grouped"):
        super().__init__()
        self.fc1 = PackedLinear([g.fc1 for g in singles])
        self.bn1 = PackedBatchNorm([g.bn1 for g in singles])
        self.fc2 = PackedLinear([g.fc2 for g in singles])
        self.bn2 = PackedBatchNorm([g.bn2 for g in singles])
        self.conv1 = PackedConv2d([g.conv1 for g in singles], conv_impl)
        self.bn3 = PackedBatchNorm([g.bn3 for g in singles])
        self.conv2 = PackedConv2d([g.conv2 for g in singles], conv_impl)
        self.fold = isinstance(singles[0], FastGenerator)
        self.loop = conv_impl == "loop"  # every layer run by run (gansweep.packed.layers)

    def _upsample_conv(self, x: torch.Tensor, conv: PackedConv2d) -> torch.Tensor:
        return conv.upsample_conv(x) if self.fold else conv(upsample2(x))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.loop:
            return torch.stack(self._forward_runs(list(z.unbind(0))))
        n, b = z.shape[:2]
        h = F.relu(self.bn1(self.fc1(z)))
        h = F.relu(self.bn2(self.fc2(h))).reshape(n, b, 128, 7, 7)
        h = self.conv1.to_layout(h)
        h = F.relu(self.bn3(self._upsample_conv(h, self.conv1), run_dim=self.conv1.run_dim))
        h = torch.tanh(self._upsample_conv(h, self.conv2))
        return self.conv2.from_layout(h)

    def _forward_runs(self, zs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``Generator.forward`` (or ``FastGenerator``'s, channels_last) for each run."""
        hs = [F.relu(h) for h in self.bn1.runs(self.fc1.runs(zs))]
        hs = [F.relu(h).view(-1, 128, 7, 7) for h in self.bn2.runs(self.fc2.runs(hs))]
        if self.fold:
            hs = [h.contiguous(memory_format=torch.channels_last) for h in hs]
            hs = [F.relu(h) for h in self.bn3.runs(self.conv1.upsample_conv_runs(hs))]
            return [torch.tanh(h) for h in self.conv2.upsample_conv_runs(hs)]
        hs = [F.relu(h) for h in self.bn3.runs(self.conv1.runs(
            [F.interpolate(h, scale_factor=2, mode="nearest") for h in hs]))]
        return [torch.tanh(h) for h in self.conv2.runs(
            [F.interpolate(h, scale_factor=2, mode="nearest") for h in hs])]


class PackedDiscriminator(nn.Module):
    """N ``Discriminator``s: images ``[N, B, 1, 28, 28]`` and, in training, Dropout masks
    ``[N, B, 256]`` -> raw scores ``[N, B, 1]``."""

    def __init__(self, singles: list[Discriminator], conv_impl: str = "grouped"):
        super().__init__()
        self.leaky_slope = singles[0].leaky_slope
        self.conv1 = PackedConv2d([d.conv1 for d in singles], conv_impl)
        self.conv2 = PackedConv2d([d.conv2 for d in singles], conv_impl)
        self.fc1 = PackedLinear([d.fc1 for d in singles])
        self.dropout = PackedDropout(singles[0].dropout.p)
        self.fc2 = PackedLinear([d.fc2 for d in singles])
        self.loop = conv_impl == "loop"  # every layer run by run (gansweep.packed.layers)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.loop:
            return torch.stack(self._forward_runs(list(x.unbind(0)), mask))
        h = F.leaky_relu(self.conv1(self.conv1.to_layout(x)), self.leaky_slope)
        h = F.leaky_relu(self.conv2(h), self.leaky_slope)
        h = self.conv2.from_layout(h).flatten(2)  # (C, H, W) order, as the single D
        h = self.dropout(F.leaky_relu(self.fc1(h), self.leaky_slope), mask)
        return self.fc2(h)

    def _forward_runs(self, xs: list[torch.Tensor], mask) -> list[torch.Tensor]:
        """``Discriminator.forward`` for each run."""
        slope = self.leaky_slope
        hs = [F.leaky_relu(h, slope) for h in self.conv1.runs(xs)]
        hs = [F.leaky_relu(h, slope).flatten(1) for h in self.conv2.runs(hs)]
        hs = self.dropout.runs([F.leaky_relu(h, slope) for h in self.fc1.runs(hs)], mask)
        return self.fc2.runs(hs)


class PackedMLP(nn.Sequential):
    """N ``MLP``s: ``[N, B, in] -> [N, B, out]``, the Linear layers packed, the (stateless)
    activations as they are. No Dropout: ``mask`` must be None."""

    def __init__(self, singles: list[MLP]):
        children = []
        for index, child in enumerate(singles[0]):
            if isinstance(child, nn.Linear):
                children.append(PackedLinear([mlp[index] for mlp in singles]))
            else:
                children.append(copy.deepcopy(child))
        super().__init__(*children)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            raise ValueError("error: an MLP has no Dropout but got masks. Fix: pass masks=None")
        return super().forward(x)


class PackedGAN(nn.Module):
    """A packed generator and discriminator, with the way back to the N single runs."""

    generator: nn.Module
    discriminator: nn.Module

    def __init__(self, gans: list[GAN]):
        super().__init__()
        check_one_architecture(gans)
        self.n, self.latent_dim = len(gans), gans[0].latent_dim

    def _check_keys(self, gans: list[GAN]) -> None:
        """The packed networks must name their parameters and buffers as the single ones do,
        in the same order (the optimiser state's order): the one-to-one map of ``unstack``."""
        for net in ("generator", "discriminator"):
            packed, single = getattr(self, net), getattr(gans[0], net)
            if list(packed.state_dict()) != list(single.state_dict()) or \
                    [n for n, _ in packed.named_parameters()] != \
                    [n for n, _ in single.named_parameters()]:
                raise ValueError(f"error: the packed {net} does not mirror the single one "
                                 f"({list(packed.state_dict())} vs {list(single.state_dict())}). "
                                 "Fix: pack a model of gansweep.models")

    def _pairs(self, gans: list[GAN]):
        if len(gans) != self.n:
            raise ValueError(f"error: this pack holds {self.n} runs, got {len(gans)} GANs. "
                             "Fix: pass the pack's own runs, in its order")
        for net in ("generator", "discriminator"):
            packed = getattr(self, net).state_dict()
            for index, gan in enumerate(gans):
                single = getattr(gan, net).state_dict()
                for key, value in packed.items():
                    yield index, value, single[key]

    @torch.no_grad()
    def unstack(self, gans: list[GAN]) -> None:
        """Write run n's parameters and buffers into ``gans[n]`` (in place: the single
        modules keep their devices and memory layouts)."""
        for index, packed, single in self._pairs(gans):
            single.copy_(packed[index])

    @torch.no_grad()
    def load_from(self, gans: list[GAN]) -> None:
        """Read run n's parameters and buffers from ``gans[n]`` (e.g. loaded from its
        checkpoint) into the pack."""
        for index, packed, single in self._pairs(gans):
            packed[index].copy_(single)


class PackedDCGAN(PackedGAN):
    """N ``gansweep.gan.models.DCGAN``s (``impl`` reference or fast) as one model.
    ``conv_impl``: ``grouped``, ``bmm`` or ``loop`` (``gansweep.packed.layers``)."""

    def __init__(self, gans: list[GAN], conv_impl: str = "grouped"):
        super().__init__(gans)
        if conv_impl not in CONV_IMPLS:
            raise ValueError(f"error: conv_impl={conv_impl!r} is not one of {list(CONV_IMPLS)}. "
                             "Fix: choose one of those")
        if not (isinstance(gans[0].generator, Generator)
                and isinstance(gans[0].discriminator, Discriminator)):
            raise ValueError(f"error: PackedDCGAN packs DCGANs, got a "
                             f"{type(gans[0].generator).__name__} and a "
                             f"{type(gans[0].discriminator).__name__}. Fix: use model=dcgan_mnist")
        self.conv_impl = conv_impl
        self.generator = PackedGenerator([gan.generator for gan in gans], conv_impl)
        self.discriminator = PackedDiscriminator([gan.discriminator for gan in gans], conv_impl)
        self._check_keys(gans)


class PackedMLPGAN(PackedGAN):
    """N ``gansweep.gan.models.MLPGAN``s as one model."""

    def __init__(self, gans: list[GAN]):
        super().__init__(gans)
        if not (isinstance(gans[0].generator, MLP) and isinstance(gans[0].discriminator, MLP)):
            raise ValueError(f"error: PackedMLPGAN packs MLPGANs, got a "
                             f"{type(gans[0].generator).__name__}. Fix: use model=mlp")
        self.generator = PackedMLP([gan.generator for gan in gans])
        self.discriminator = PackedMLP([gan.discriminator for gan in gans])
        self._check_keys(gans)


def auto_conv_impl(gan: GAN, device: torch.device) -> str:
    """``conv_impl=auto``: what ``gansweep-bench --pack`` measured fastest. On a CPU the fast
    G's pack runs every layer run by run (``loop``: 0.89x the runs stepped separately at
    N = 7, ``grouped`` 0.73x), the reference one grouped (1.08x, ``loop`` 1.03x); on a GPU
    grouped, one launch per layer for all runs (docs/performance.md, "Packed runs")."""
    if device.type == "cpu" and isinstance(gan.generator, FastGenerator):
        return "loop"
    return "grouped"


def pack(gans: list[GAN], conv_impl: str = "grouped") -> PackedGAN:
    """The packed model of N GANs of one architecture (DCGAN or MLPGAN)."""
    if isinstance(gans[0].generator, MLP):
        return PackedMLPGAN(gans)
    return PackedDCGAN(gans, conv_impl)
