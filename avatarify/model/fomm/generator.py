"""Occlusion-aware generator: encode the source, warp its features, inpaint and decode."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from .dense_motion import DenseMotionNetwork
from .motion import Keypoints


@dataclass
class SourceEncoding:
    """Everything the generator derives from the source image alone (computed once per avatar)."""

    image: torch.Tensor
    features: torch.Tensor
    downsampled: torch.Tensor


class OcclusionAwareGenerator(nn.Module):
    """FOMM generator. `forward(source, kp_driving=..., kp_source=...)` matches the original call."""

    def __init__(
        self,
        num_channels: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: dict | None = None,
        estimate_jacobian: bool = False,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        del estimate_jacobian  # accepted for config compatibility; the generator reads jacobians if present
        self.dense_motion_network = (
            DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                align_corners=align_corners,
                **dense_motion_params,
            )
            if dense_motion_params is not None
            else None
        )
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)

        def width(level: int) -> int:
            return min(max_features, block_expansion * (2**level))

        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(num_down_blocks - i), width(num_down_blocks - i - 1)) for i in range(num_down_blocks)
        )
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(num_down_blocks), kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.feature_channels = width(num_down_blocks)
        self.align_corners = align_corners

    def warp(self, inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
        """Sample `inp` at `deformation` (N x h x w x 2), resizing the flow bilinearly if the sizes differ."""
        _, h_flow, w_flow, _ = deformation.shape
        _, _, h, w = inp.shape
        if (h_flow, w_flow) != (h, w):
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear")
            deformation = deformation.permute(0, 2, 3, 1)
        return F.grid_sample(inp, deformation, align_corners=self.align_corners)

    def encode(self, source_image: torch.Tensor) -> SourceEncoding:
        """The source-only half of the generator."""
        features = self.first(source_image)
        for block in self.down_blocks:
            features = block(features)
        downsampled = (
            self.dense_motion_network.downsample(source_image) if self.dense_motion_network is not None else source_image
        )
        return SourceEncoding(image=source_image, features=features, downsampled=downsampled)

    def animate(
        self, encoding: SourceEncoding, kp_driving: Keypoints, kp_source: Keypoints, with_deformed: bool = False
    ) -> dict[str, torch.Tensor]:
        """The per-frame half: motion, feature warp, occlusion, bottleneck and decoder."""
        out = self.move_features(encoding, kp_driving, kp_source, with_deformed)
        out["prediction"] = self.decode(out.pop("warped"))
        return out

    def move_features(
        self, encoding: SourceEncoding, kp_driving: Keypoints, kp_source: Keypoints, with_deformed: bool = False
    ) -> dict[str, torch.Tensor]:
        """Motion, feature warp and occlusion: "warped" holds the source features moved to the driving pose,
        the other entries the motion network's outputs."""
        out: dict[str, torch.Tensor] = {}
        features = encoding.features
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network.forward_downsampled(encoding.downsampled, kp_driving, kp_source)
            out.update(motion)
            features = self.warp(features, motion["deformation"])
            occlusion_map = motion.get("occlusion_map")
            if occlusion_map is not None:
                if occlusion_map.shape[2:] != features.shape[2:]:
                    occlusion_map = F.interpolate(occlusion_map, size=features.shape[2:], mode="bilinear")
                features = features * occlusion_map
            if with_deformed:
                out["deformed"] = self.warp(encoding.image, motion["deformation"])
        out["warped"] = features
        return out

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Bottleneck, upsampling and output layer: warped features -> image in [0, 1], in float32.

        Runs in the decoder's own number type (see `set_decoder_dtype`).
        """
        features = features.to(self.decoder_dtype)
        features = self.bottleneck(features)
        for block in self.up_blocks:
            features = block(features)
        return torch.sigmoid(self.final(features).float())

    @property
    def decoder_dtype(self) -> torch.dtype:
        return self.final.weight.dtype

    def set_decoder_dtype(self, dtype: torch.dtype) -> None:
        """Store and run the decoder, the bulk of the per-frame work, in `dtype` (e.g. bfloat16 on CPU,
        float16 on CUDA). Keypoints and motion stay in float32: the warp amplifies their rounding errors."""
        for module in (self.bottleneck, self.up_blocks, self.final):
            module.to(dtype)

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict[str, torch.Tensor]:
        return self.animate(self.encode(source_image), kp_driving, kp_source, with_deformed=True)
