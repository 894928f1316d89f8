"""Unsupervised keypoint detector with local affine jacobians."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasInterpolation2d, Hourglass
from .motion import Keypoints, make_coordinate_grid


class KPDetector(nn.Module):
    """Predicts K keypoints (softmax heat-map expectations) and their 2x2 jacobians from an image."""

    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
        self.jacobian = (
            nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=pad)
            if estimate_jacobian
            else None
        )
        self.temperature = temperature
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None

    def forward(self, image: torch.Tensor) -> Keypoints:
        """image: N x C x H x W in [0, 1] -> {"value": N x K x 2, "jacobian": N x K x 2 x 2}."""
        if self.down is not None:
            image = self.down(image)
        features = self.predictor(image)
        logits = self.kp(features)
        n, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(n, k, -1) / self.temperature, dim=2).view(n, k, h, w)
        grid = make_coordinate_grid(h, w, heatmap)
        out = {"value": (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))}
        if self.jacobian is not None:
            jacobian_map = self.jacobian(features).reshape(n, self.num_jacobian_maps, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(n, k, 4, -1).sum(dim=-1)
            out["jacobian"] = jacobian.view(n, k, 2, 2)
        return out
