"""Dense motion network: blends per-keypoint local affine motions into one dense flow."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AntiAliasInterpolation2d, Hourglass
from .motion import Keypoints, inverse_2x2, kp2gaussian, make_coordinate_grid


class DenseMotionNetwork(nn.Module):
    """Predicts the backward deformation (driving -> source) and the occlusion map."""

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (num_channels + 1), num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3) if estimate_occlusion_map else None
        )
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        self.align_corners = align_corners
        self.down = AntiAliasInterpolation2d(num_channels, scale_factor) if scale_factor != 1 else None
        # Set by avatarify.fomm.optimize: one conv computing both heads.
        self.merged_heads: nn.Module | None = None

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """The resolution the motion is estimated at; depends on the source only, so callers may cache it."""
        return self.down(source_image) if self.down is not None else source_image

    def sparse_motions(self, height: int, width: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
        """N x (K+1) x H x W x 2 sampling grids: identity (background), then one local affine motion per keypoint."""
        value_s, value_d = kp_source["value"], kp_driving["value"]
        n = value_s.shape[0]
        identity = make_coordinate_grid(height, width, value_s).view(1, 1, height, width, 2)
        coords = identity - value_d.view(n, self.num_kp, 1, 1, 2)
        if "jacobian" in kp_driving:
            jacobian = torch.matmul(kp_source["jacobian"], inverse_2x2(kp_driving["jacobian"]))
            coords = torch.einsum("nkij,nkhwj->nkhwi", jacobian, coords)
        driving_to_source = coords + value_s.view(n, self.num_kp, 1, 1, 2)
        return torch.cat([identity.expand(n, 1, height, width, 2), driving_to_source], dim=1)

    def forward_downsampled(
        self, source_small: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints
    ) -> dict[str, torch.Tensor]:
        """Motion from an already downsampled source (see `downsample`)."""
        n, c, h, w = source_small.shape
        k1 = self.num_kp + 1
        heatmap = kp2gaussian(kp_driving["value"], h, w, self.kp_variance) - kp2gaussian(
            kp_source["value"], h, w, self.kp_variance
        )
        heatmap = torch.cat([heatmap.new_zeros(n, 1, h, w), heatmap], dim=1).unsqueeze(2)

        motions = self.sparse_motions(h, w, kp_driving, kp_source)
        source_repeat = source_small.unsqueeze(1).expand(n, k1, c, h, w).reshape(n * k1, c, h, w)
        sparse_deformed = F.grid_sample(
            source_repeat, motions.reshape(n * k1, h, w, 2), align_corners=self.align_corners
        ).view(n, k1, c, h, w)

        features = self.hourglass(torch.cat([heatmap, sparse_deformed], dim=2).view(n, -1, h, w))
        mask_logits, occlusion_logits = self.heads(features)
        mask = F.softmax(mask_logits, dim=1)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)
        out = {"sparse_deformed": sparse_deformed, "mask": mask, "deformation": deformation}
        if occlusion_logits is not None:
            out["occlusion_map"] = torch.sigmoid(occlusion_logits)
        return out

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits (N x K+1 x H x W) and occlusion logits (N x 1 x H x W, or None)."""
        if self.merged_heads is not None:
            return self.merged_heads(features)
        occlusion = self.occlusion(features) if self.occlusion is not None else None
        return self.mask(features), occlusion

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict[str, torch.Tensor]:
        return self.forward_downsampled(self.downsample(source_image), kp_driving, kp_source)
