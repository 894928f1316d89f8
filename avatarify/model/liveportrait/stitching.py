"""S, stitching and retargeting: small MLPs on keypoints.

Stitching moves the driving keypoints so that the animated face joins the avatar's still shoulders and background.
The published file also holds the eye and lip retargeting MLPs; they are loaded and checked with it, and wait for
eye and lip openness ratios, which need face landmarks this engine does not compute.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .blocks import check_shape

# The published file's names for the three MLPs.
FILE_KEYS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


class RetargetingMLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, input_size: int, hidden_sizes: Sequence[int], output_size: int) -> None:
        super().__init__()
        sizes = [input_size, *hidden_sizes]
        layers: list[nn.Module] = []
        for before, after in zip(sizes, sizes[1:]):
            layers += [nn.Linear(before, after), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], output_size))
        self.mlp = nn.Sequential(*layers)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, (None, self.input_size), "retargeting input")
        return self.mlp(x)


class StitchingRetargeting(nn.Module):
    """The stitching MLP (source and driving keypoints -> keypoint offsets and an x/y shift) with the eye and lip
    retargeting MLPs of the same file."""

    def __init__(self, stitching: dict, lip: dict, eye: dict) -> None:
        super().__init__()
        self.stitching = RetargetingMLP(**stitching)
        self.lip = RetargetingMLP(**lip)
        self.eye = RetargetingMLP(**eye)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """The driving keypoints (B x K x 3) moved by the stitching offsets and shift."""
        check_shape(kp_driving, tuple(kp_source.shape), "driving keypoints")
        batch, num_kp, _ = kp_source.shape
        delta = self.stitching(torch.cat([kp_source.reshape(batch, -1), kp_driving.reshape(batch, -1)], dim=1))
        moved = kp_driving + delta[:, : 3 * num_kp].reshape(batch, num_kp, 3)
        shift = delta[:, 3 * num_kp : 3 * num_kp + 2]
        return moved + torch.cat([shift, torch.zeros_like(shift[:, :1])], dim=1)[:, None, :]
