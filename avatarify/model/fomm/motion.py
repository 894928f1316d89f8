"""Keypoint geometry: coordinate grids, Gaussian heat maps and relative motion transfer."""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull

Keypoints = dict  # {"value": N x K x 2, "jacobian": N x K x 2 x 2}


def make_coordinate_grid(height: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """(x, y) grid of shape H x W x 2 spanning [-1, 1], -1/+1 at the centres of the corner pixels."""
    x = 2 * (torch.arange(width, dtype=like.dtype, device=like.device) / (width - 1)) - 1
    y = 2 * (torch.arange(height, dtype=like.dtype, device=like.device) / (height - 1)) - 1
    xx = x.view(1, -1).expand(height, width)
    yy = y.view(-1, 1).expand(height, width)
    return torch.stack([xx, yy], dim=2)


def kp2gaussian(value: torch.Tensor, height: int, width: int, kp_variance: float) -> torch.Tensor:
    """Isotropic Gaussian heat maps (N x K x H x W) centred on keypoints `value` (N x K x 2)."""
    grid = make_coordinate_grid(height, width, value)
    diff = grid.view(1, 1, height, width, 2) - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / kp_variance)


def inverse_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """The inverses of a batch of 2x2 matrices (... x 2 x 2) in closed form: adjugate over determinant.

    Replaces `torch.inverse`, which has no ONNX counterpart, so the torch model and its exported graphs
    compute the same thing.
    """
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    adjugate = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return adjugate / (a * d - b * c)[..., None, None]


def convex_hull_area(points: torch.Tensor) -> float:
    """Area of the 2-D convex hull of K x 2 points."""
    return float(ConvexHull(points.detach().cpu().double().numpy()).volume)


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """Ratio of the keypoint spreads of the source and the neutral driving frame (FOMM's adapt scale)."""
    source_area = convex_hull_area(kp_source["value"][0])
    driving_area = convex_hull_area(kp_driving_initial["value"][0])
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def normalize_kp(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    adapt_movement_scale: bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
    motion_strength: float = 1.0,
) -> Keypoints:
    """Transfer the driving motion onto the source keypoints (FOMM's `normalize_kp`).

    In relative mode the displacement of the driving keypoints from the neutral frame
    (`kp_driving_initial`), scaled by the adapt scale and `motion_strength`, is added to
    the source keypoints, and the jacobians are composed the same way (their change from the
    identity scaled by `motion_strength`). Absolute mode returns the driving keypoints
    unchanged. `motion_strength=1.0` is the original FOMM behaviour.
    """
    if not use_relative_movement:
        return dict(kp_driving)
    scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    return relative_keypoints(kp_source, kp_driving, kp_driving_initial, scale * motion_strength,
                              use_relative_jacobian, motion_strength)


def relative_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    value_scale: float | torch.Tensor,
    use_relative_jacobian: bool = True,
    jacobian_strength: float | torch.Tensor = 1.0,
) -> Keypoints:
    """The source keypoints moved by the driving keypoints' displacement from the neutral frame.

    `value_scale` multiplies the displacement (adapt scale times motion strength); callers that
    animate many frames against one neutral pose compute the adapt scale once. For a batch of frames
    from different sessions both may be tensors of N values, one per frame.
    """
    kp_new = dict(kp_driving)
    if isinstance(value_scale, torch.Tensor):
        value_scale = value_scale.view(-1, 1, 1)
    kp_new["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * value_scale + kp_source["value"]
    if use_relative_jacobian:
        jacobian_diff = torch.matmul(kp_driving["jacobian"], inverse_2x2(kp_driving_initial["jacobian"]))
        strength = torch.as_tensor(jacobian_strength, dtype=jacobian_diff.dtype, device=jacobian_diff.device)
        if bool((strength != 1.0).any()):
            strength = strength.view(-1, 1, 1, 1)
            identity = torch.eye(2, dtype=jacobian_diff.dtype, device=jacobian_diff.device)
            # Frames at strength 1 keep the exact product, as a frame animated on its own does.
            jacobian_diff = torch.where(strength == 1.0, jacobian_diff, identity + strength * (jacobian_diff - identity))
        kp_new["jacobian"] = torch.matmul(jacobian_diff, kp_source["jacobian"])
    return kp_new
