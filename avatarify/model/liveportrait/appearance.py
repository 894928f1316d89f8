"""F, the appearance feature extractor: a 256x256 picture becomes a 3-D feature volume (C x D x 64 x 64)."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ConvBlock2d, DownBlock2d, ResBlock3d, check_shape


class AppearanceFeatureExtractor(nn.Module):
    """2-D convs down to 64x64, channels reshaped into a depth axis, then 3-D residual blocks.

    Output: `reshape_channel` x `reshape_depth` x H/4 x W/4 (the published model: 32 x 16 x 64 x 64).
    """

    def __init__(
        self,
        image_channel: int,
        block_expansion: int,
        num_down_blocks: int,
        max_features: int,
        reshape_channel: int,
        reshape_depth: int,
        num_resblocks: int,
    ) -> None:
        super().__init__()
        if reshape_channel * reshape_depth != max_features:
            raise ValueError("reshape_channel x reshape_depth must equal max_features")
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.image_channel = image_channel
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.first = ConvBlock2d(image_channel, block_expansion)
        self.down_blocks = nn.ModuleList(DownBlock2d(i, o) for i, o in zip(widths, widths[1:]))
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for index in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{index}", ResBlock3d(reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W in [0, 1] -> B x C x D x H/4 x W/4 (for 2 down blocks)."""
        check_shape(image, (None, self.image_channel, None, None), "image")
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        batch, _, height, width = out.shape
        volume = out.view(batch, self.reshape_channel, self.reshape_depth, height, width)
        return self.resblocks_3d(volume)
