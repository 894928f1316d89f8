"""W, the warping module: dense motion (with an occlusion map) from the keypoints, the avatar's feature volume
sampled along it, then 2-D convs to the decoder's input.

What depends on the avatar alone (its compressed volume and keypoint heat maps) is prepared once per avatar.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock2d, Hourglass3d, check_shape

KP_VARIANCE = 0.01


def coordinate_grid(depth: int, height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """D x H x W x 3 grid of (x, y, z) coordinates in [-1, 1], x along the width."""
    axes = [2 * (torch.arange(n, dtype=like.dtype, device=like.device) / (n - 1)) - 1 for n in (width, height, depth)]
    z, y, x = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def keypoint_heatmaps(kp: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Gaussians around B x K x 3 keypoints on a D x H x W x 3 grid: B x K x D x H x W."""
    offsets = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * offsets.pow(2).sum(-1) / KP_VARIANCE)


@dataclass(frozen=True)
class WarpSource:
    """What the dense motion needs from the avatar, computed once: its compressed volume (B x c x D x H x W),
    keypoints (B x K x 3), their heat maps and the identity grid."""

    volume: torch.Tensor
    compressed: torch.Tensor
    kp: torch.Tensor
    heatmaps: torch.Tensor
    grid: torch.Tensor


@dataclass(frozen=True)
class Warped:
    """The warping module's outputs: decoder input B x C x H x W, deformation B x D x H x W x 3, occlusion
    B x 1 x H x W."""

    features: torch.Tensor
    deformation: torch.Tensor
    occlusion: torch.Tensor | None


class DenseMotionNetwork(nn.Module):
    """Per-keypoint motions of the volume blended by a softmax mask from a 3-D hourglass; plus an occlusion map."""

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int, feature_channel: int,
                 reshape_depth: int, compress: int, estimate_occlusion_map: bool = True) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.hourglass = Hourglass3d(block_expansion, (num_kp + 1) * (compress + 1), num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map else None
        )

    def prepare(self, volume: torch.Tensor, kp_source: torch.Tensor) -> WarpSource:
        """The avatar's part of the dense motion: compressed volume and keypoint heat maps."""
        check_shape(kp_source, (volume.shape[0], self.num_kp, 3), "source keypoints")
        compressed = F.relu(self.norm(self.compress(volume)))
        grid = coordinate_grid(*compressed.shape[2:], like=compressed)
        return WarpSource(volume, compressed, kp_source, keypoint_heatmaps(kp_source, grid), grid)

    def sparse_motions(self, source: WarpSource, kp_driving: torch.Tensor) -> torch.Tensor:
        """B x (K+1) x D x H x W x 3 sampling grids: the identity, then one per keypoint (x - kp_d + kp_s)."""
        batch = kp_driving.shape[0]
        per_kp = source.grid[None, None] - kp_driving[:, :, None, None, None, :] + source.kp[:, :, None, None, None, :]
        identity = source.grid[None, None].expand(batch, 1, *source.grid.shape)
        return torch.cat([identity, per_kp], dim=1)

    def forward(self, source: WarpSource, kp_driving: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The deformation B x D x H x W x 3 and the occlusion map B x 1 x H x W (None without one)."""
        check_shape(kp_driving, tuple(source.kp.shape), "driving keypoints")
        batch, channels, depth, height, width = source.compressed.shape
        motions = self.sparse_motions(source, kp_driving)
        parts = self.num_kp + 1
        repeated = source.compressed[:, None].expand(batch, parts, channels, depth, height, width)
        deformed = F.grid_sample(
            repeated.reshape(batch * parts, channels, depth, height, width),
            motions.reshape(batch * parts, depth, height, width, 3), align_corners=False,
        ).view(batch, parts, channels, depth, height, width)
        heatmaps = keypoint_heatmaps(kp_driving, source.grid) - source.heatmaps
        background = torch.zeros_like(heatmaps[:, :1])
        heatmaps = torch.cat([background, heatmaps], dim=1)[:, :, None]
        prediction = self.hourglass(torch.cat([heatmaps, deformed], dim=2).view(batch, -1, depth, height, width))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask[:, :, None]).sum(dim=1).permute(0, 2, 3, 4, 1)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(prediction.reshape(batch, -1, height, width)))
        return deformation, occlusion


class WarpingNetwork(nn.Module):
    """W: the dense motion, a 3-D warp of the avatar's volume, then a conv block and a 1x1 conv, times occlusion."""

    def __init__(self, num_kp: int, block_expansion: int, max_features: int, num_down_blocks: int,
                 reshape_channel: int, estimate_occlusion_map: bool, dense_motion_params: dict) -> None:
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=reshape_channel, estimate_occlusion_map=estimate_occlusion_map,
            **dense_motion_params,
        )
        width = block_expansion * 2**num_down_blocks
        self.third = ConvBlock2d(max_features, width, negative_slope=0.01)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)

    def prepare(self, volume: torch.Tensor, kp_source: torch.Tensor) -> WarpSource:
        """Everything about the avatar the warp needs, computed once per avatar."""
        check_shape(volume, (None, None, None, None, None), "feature volume")
        return self.dense_motion_network.prepare(volume, kp_source)

    def forward(self, source: WarpSource, kp_driving: torch.Tensor) -> Warped:
        deformation, occlusion = self.dense_motion_network(source, kp_driving)
        warped = F.grid_sample(source.volume, deformation, align_corners=False)
        batch, channels, depth, height, width = warped.shape
        features = self.fourth(self.third(warped.view(batch, channels * depth, height, width)))
        if occlusion is not None:
            features = features * occlusion
        return Warped(features, deformation, occlusion)
