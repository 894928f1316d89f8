"""M, the motion extractor: a ConvNeXt-V2 backbone with linear heads for the implicit keypoints, expression,
head pose (as bins), scale and translation of a 256x256 face."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_shape

TINY_DEPTHS = (3, 3, 9, 3)
TINY_DIMS = (96, 192, 384, 768)
POSE_BINS = 66
LAYER_NORM_EPS = 1e-6
HEADS = ("kp", "scale", "pitch", "yaw", "roll", "t", "exp")


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a B x C x H x W tensor."""

    def __init__(self, channels: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        variance = (x - mean).pow(2).mean(1, keepdim=True)
        normalized = (x - mean) / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * normalized + self.bias[:, None, None]


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2's GRN on a channels-last B x H x W x C tensor: each channel scaled by its relative L2 energy."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        relative = energy / (energy.mean(dim=-1, keepdim=True) + 1e-6)
        # gamma * (x * relative) + beta + x, as x * (1 + gamma * relative) + beta: one pass over x, not three.
        return torch.addcmul(self.beta, x, self.gamma * relative + 1)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, 4x MLP with GELU and GRN, plus the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GlobalResponseNorm(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)
        out = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(out)))))
        return x + out.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """A ConvNeXt-V2 backbone (4x4 stem, 3 downsamplings, `depths` blocks per stage) with the motion heads."""

    def __init__(self, num_kp: int, depths: Sequence[int], dims: Sequence[int], in_chans: int = 3) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError("depths and dims need four stages each")
        self.in_chans = in_chans
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))]
        )
        for before, after in zip(dims, dims[1:]):
            self.downsample_layers.append(
                nn.Sequential(ChannelsFirstLayerNorm(before), nn.Conv2d(before, after, kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth))) for depth, dim in zip(depths, dims)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=LAYER_NORM_EPS)
        sizes = {"kp": 3 * num_kp, "scale": 1, "pitch": POSE_BINS, "yaw": POSE_BINS, "roll": POSE_BINS, "t": 3,
                 "exp": 3 * num_kp}
        for head in HEADS:
            self.add_module(f"fc_{head}", nn.Linear(dims[-1], sizes[head]))

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """B x 3 x H x W in [0, 1] -> the raw heads: kp and exp (B x 3K), pose bins (B x 66), t (B x 3), scale."""
        check_shape(image, (None, self.in_chans, None, None), "image")
        x = image
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        features = self.norm(x.mean(dim=(-2, -1)))  # global average pooling
        return {head: getattr(self, f"fc_{head}")(features) for head in HEADS}


class MotionExtractor(nn.Module):
    """M: the backbone (published: ConvNeXt-V2 tiny) under the `detector` name its checkpoint uses."""

    def __init__(
        self,
        num_kp: int,
        backbone: str = "convnextv2_tiny",
        depths: Sequence[int] = TINY_DEPTHS,
        dims: Sequence[int] = TINY_DIMS,
    ) -> None:
        super().__init__()
        if backbone != "convnextv2_tiny":
            raise ValueError(f"unknown backbone {backbone!r}; the published one is convnextv2_tiny")
        self.num_kp = num_kp
        self.detector = ConvNeXtV2(num_kp, depths, dims)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(image)
