"""Building blocks shared by LivePortrait's networks: conv + BatchNorm blocks in 2-D and 3-D, the 3-D hourglass,
and the checks that give a clear message when a tensor has the wrong shape.

Attribute names follow the published checkpoints' state dict keys, so that they load unchanged.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def check_shape(tensor: torch.Tensor, expected: Sequence[int | None], name: str) -> None:
    """Raise ValueError unless `tensor` has `expected` shape (None: any size in that dimension)."""
    shape = tuple(tensor.shape)
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        wanted = "x".join("*" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape {wanted}, got {'x'.join(map(str, shape)) or 'a scalar'}")


class ConvBlock2d(nn.Module):
    """3x3 conv, BatchNorm, then ReLU (or leaky ReLU with `negative_slope`)."""

    def __init__(self, in_features: int, out_features: int, negative_slope: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x))
        return F.leaky_relu(out, self.negative_slope) if self.negative_slope else F.relu(out)


class DownBlock2d(ConvBlock2d):
    """ConvBlock2d followed by 2x2 average pooling."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(super().forward(x), 2)


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a 3-D volume: BN, ReLU, conv, BN, ReLU, conv, plus the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(features)
        self.norm2 = nn.BatchNorm3d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


class ConvBlock3d(nn.Module):
    """3x3x3 conv, BatchNorm, ReLU; `scale` < 1 pools, > 1 upsamples height and width (never depth)."""

    def __init__(self, in_features: int, out_features: int, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale > 1:
            x = F.interpolate(x, scale_factor=(1.0, self.scale, self.scale))  # nearest
        out = F.relu(self.norm(self.conv(x)))
        if self.scale < 1:
            out = F.avg_pool3d(out, kernel_size=(1, round(1 / self.scale), round(1 / self.scale)))
        return out


def _widths(block_expansion: int, max_features: int, num_blocks: int) -> list[int]:
    """Channel widths of the hourglass levels: level i has min(max_features, block_expansion * 2**i)."""
    return [min(max_features, block_expansion * 2**i) for i in range(num_blocks + 1)]


class Encoder3d(nn.Module):
    """The hourglass's contracting half: `num_blocks` pooling conv blocks; keeps every level for the skips."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = _widths(block_expansion, max_features, num_blocks)
        inputs = [in_features, *widths[1:-1]]
        self.down_blocks = nn.ModuleList(ConvBlock3d(i, o, scale=0.5) for i, o in zip(inputs, widths[1:]))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for block in self.down_blocks:
            levels.append(block(levels[-1]))
        return levels


class Decoder3d(nn.Module):
    """The hourglass's expanding half: upsampling conv blocks, each output joined with its skip level."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        widths = _widths(block_expansion, max_features, num_blocks)
        blocks = []
        for level in reversed(range(num_blocks)):
            # The deepest block takes the bottleneck alone; the others also take the skip joined to their input.
            inputs = widths[level + 1] * (1 if level == num_blocks - 1 else 2)
            blocks.append(ConvBlock3d(inputs, widths[level], scale=2.0))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        out = levels[-1]
        for block, skip in zip(self.up_blocks, reversed(levels[:-1])):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """A 3-D U-Net: the input joined with `block_expansion` features at full resolution."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.encoder = Encoder3d(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder3d(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
