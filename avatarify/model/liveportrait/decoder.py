"""G, the SPADE decoder: the warped features become the output picture (512x512 for the published model).

Every residual block is conditioned on the warped features themselves (SPADE: instance norm whose scale and shift
are predicted per pixel), its convs spectrally normalised as published.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_shape

SPADE_HIDDEN = 128
LEAKY_SLOPE = 0.2
MIDDLE_BLOCKS = 6
POWER_ITERATIONS = 3


class SpectralConv2d(nn.Module):
    """A conv whose weight is divided by its largest singular value, estimated as u . (W v) from the stored
    vectors (the published checkpoints hold `weight_orig`, `weight_u`, `weight_v`; inference never updates them).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        # Registered in the checkpoints' order: bias, weight_orig, then the two vectors.
        self.bias = conv.bias
        self.weight_orig = conv.weight
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))
        self.padding = kernel_size // 2
        self._estimate_vectors()

    @torch.no_grad()
    def _estimate_vectors(self) -> None:
        """Singular vectors of a freshly initialised weight, so that a model without a checkpoint is scaled sanely."""
        matrix = self.weight_orig.flatten(1)
        if matrix.is_meta:
            return
        v = F.normalize(torch.randn(matrix.shape[1]), dim=0)
        for _ in range(POWER_ITERATIONS):
            u = F.normalize(matrix @ v, dim=0)
            v = F.normalize(matrix.t() @ u, dim=0)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def weight(self) -> torch.Tensor:
        """The normalised weight, computed in float32 whatever the module's precision."""
        matrix = self.weight_orig.float()
        sigma = torch.dot(self.weight_u.float(), torch.mv(matrix.flatten(1), self.weight_v.float()))
        return (matrix / sigma).to(self.weight_orig.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Parameter-free instance norm, then a per-pixel scale and shift predicted from the conditioning map."""

    def __init__(self, norm_channels: int, label_channels: int) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, SPADE_HIDDEN, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(SPADE_HIDDEN, norm_channels, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(SPADE_HIDDEN, norm_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """`condition` already has x's height and width."""
        hidden = self.mlp_shared(condition)
        return F.instance_norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class SPADEResBlock(nn.Module):
    """Two SPADE + leaky ReLU + spectral conv steps, plus a shortcut (learned when the width changes)."""

    def __init__(self, fin: int, fout: int, label_channels: int) -> None:
        super().__init__()
        middle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralConv2d(fin, middle, 3)
        self.conv_1 = SpectralConv2d(middle, fout, 3)
        if self.learned_shortcut:
            self.conv_s = SpectralConv2d(fin, fout, 1, bias=False)
        self.norm_0 = SPADE(fin, label_channels)
        self.norm_1 = SPADE(middle, label_channels)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_channels)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, condition)) if self.learned_shortcut else x
        out = self.conv_0(F.leaky_relu(self.norm_0(x, condition), LEAKY_SLOPE))
        out = self.conv_1(F.leaky_relu(self.norm_1(out, condition), LEAKY_SLOPE))
        return shortcut + out


class SPADEDecoder(nn.Module):
    """G: a conv to twice the input width, six SPADE blocks, two (upsample, SPADE block) steps, then an RGB conv
    with a pixel shuffle when `upscale` is 2; a sigmoid gives colours in [0, 1]."""

    def __init__(self, upscale: int = 1, max_features: int = 256, block_expansion: int = 64, out_channels: int = 64,
                 num_down_blocks: int = 2) -> None:
        super().__init__()
        if upscale not in (1, 2):
            raise ValueError("upscale must be 1 or 2")
        width = min(max_features, block_expansion * 2**num_down_blocks)
        self.in_channels = width
        self.upscale = upscale
        self.fc = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        for index in range(MIDDLE_BLOCKS):
            self.add_module(f"G_middle_{index}", SPADEResBlock(2 * width, 2 * width, width))
        self.up_0 = SPADEResBlock(2 * width, width, width)
        self.up_1 = SPADEResBlock(width, out_channels, width)
        to_rgb = nn.Conv2d(out_channels, 3 * upscale**2, kernel_size=3, padding=1)
        self.conv_img = nn.Sequential(to_rgb, nn.PixelShuffle(2)) if upscale == 2 else to_rgb

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """B x C x H x W warped features -> B x 3 x 4H*upscale x 4W*upscale picture in [0, 1]."""
        check_shape(features, (None, self.in_channels, None, None), "warped features")
        x = self.fc(features)
        for index in range(MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{index}")(x, features)
        for block in (self.up_0, self.up_1):
            x = F.interpolate(x, scale_factor=2)  # nearest
            x = block(x, F.interpolate(features, size=x.shape[2:]))
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, LEAKY_SLOPE)))
