"""From the motion extractor's heads to keypoints in the driving space, and relative motion (the paper's eq. 2).

A face is described by canonical keypoints kp (K x 3), a head pose (pitch, yaw, roll in degrees), expression
offsets exp (K x 3), a scale and a translation t; its keypoints are x = scale * (kp R + exp) + t, with t moving
x and y only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .blocks import check_shape
from .motion import POSE_BINS

# A pose bin is 3 degrees wide; the 66 bins cover -97.5 to +97.5 degrees.
DEGREES_PER_BIN = 3.0
FIRST_BIN_DEGREES = -97.5
# Below this rotation angle (radians) a rotation is scaled to first order: the axis is undefined at zero.
SMALL_ANGLE = 1e-6


@dataclass(frozen=True)
class MotionInfo:
    """One face's motion parameters, batch-first: kp and exp B x K x 3, pitch/yaw/roll B x 1 (degrees),
    t B x 3, scale B x 1."""

    kp: torch.Tensor
    exp: torch.Tensor
    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    scale: torch.Tensor

    @property
    def rotation(self) -> torch.Tensor:
        """B x 3 x 3, applied to row vectors (kp @ R)."""
        return rotation_matrix(self.pitch, self.yaw, self.roll)


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """B x 66 pose-bin logits -> B angles in degrees: the softmax-weighted bin index, 3 degrees a bin."""
    check_shape(logits, (None, POSE_BINS), "pose logits")
    index = torch.arange(POSE_BINS, dtype=logits.dtype, device=logits.device)
    return torch.sum(F.softmax(logits, dim=1) * index, dim=1) * DEGREES_PER_BIN + FIRST_BIN_DEGREES


def motion_info(heads: dict[str, torch.Tensor]) -> MotionInfo:
    """The motion extractor's raw heads as `MotionInfo` (poses in degrees, keypoints as B x K x 3)."""
    batch = heads["kp"].shape[0]
    return MotionInfo(
        kp=heads["kp"].reshape(batch, -1, 3),
        exp=heads["exp"].reshape(batch, -1, 3),
        pitch=bins_to_degrees(heads["pitch"])[:, None],
        yaw=bins_to_degrees(heads["yaw"])[:, None],
        roll=bins_to_degrees(heads["roll"])[:, None],
        t=heads["t"],
        scale=heads["scale"],
    )


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """B x 3 x 3 rotations for row vectors from angles in degrees (each B or B x 1).

    Pitch turns about x, yaw about y, roll about z; as a matrix on column vectors Rz Ry Rx, transposed here
    because keypoints are rows.
    """
    x, y, z = (torch.deg2rad(angle.reshape(-1)) for angle in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], dim=1)
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], dim=1)
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], dim=1)
    columns = rot_z.view(-1, 3, 3) @ rot_y.view(-1, 3, 3) @ rot_x.view(-1, 3, 3)
    return columns.transpose(1, 2)


def place_keypoints(kp: torch.Tensor, rotation: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor,
                    t: torch.Tensor) -> torch.Tensor:
    """x = scale * (kp R + exp) + t, with t's z ignored: B x K x 3."""
    check_shape(kp, (None, None, 3), "kp")
    check_shape(rotation, (kp.shape[0], 3, 3), "rotation")
    placed = (kp @ rotation + exp) * scale.view(-1, 1, 1)
    shift = torch.cat([t[:, :2], torch.zeros_like(t[:, 2:])], dim=1)
    return placed + shift[:, None, :]


def transform_keypoints(info: MotionInfo) -> torch.Tensor:
    """A face's own keypoints in the driving space: B x K x 3."""
    return place_keypoints(info.kp, info.rotation, info.exp, info.scale, info.t)


def scale_rotation(rotation: torch.Tensor, strength: float) -> torch.Tensor:
    """The rotation R^strength (same axis, angle times `strength`) of B x 3 x 3 rotations, by Rodrigues' formula."""
    if strength == 1.0:
        return rotation
    skew = (rotation - rotation.transpose(1, 2)) / 2  # sin(angle) [axis]x
    cos = ((rotation.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    sin = torch.sin(angle)
    small = angle < SMALL_ANGLE
    axis_cross = skew / torch.where(small, torch.ones_like(sin), sin).view(-1, 1, 1)
    new_angle = (angle * strength).view(-1, 1, 1)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(rotation)
    scaled = eye + torch.sin(new_angle) * axis_cross + (1 - torch.cos(new_angle)) * (axis_cross @ axis_cross)
    return torch.where(small.view(-1, 1, 1), eye + strength * skew, scaled)


def relative_keypoints(source: MotionInfo, driving: MotionInfo, neutral: MotionInfo,
                       strength: float = 1.0) -> torch.Tensor:
    """The source's keypoints moved by the driving face's motion since its neutral pose: B x K x 3.

    Rotation R_d R_n^T, expression change, scale ratio and translation change are applied to the source's own;
    `strength` scales each change (1.0: as measured; the rotation by its angle).
    """
    delta_rotation = scale_rotation(driving.rotation @ neutral.rotation.transpose(1, 2), strength)
    rotation = delta_rotation @ source.rotation
    exp = source.exp + (driving.exp - neutral.exp) * strength
    ratio = driving.scale / neutral.scale
    scale = source.scale * (ratio if strength == 1.0 else 1 + (ratio - 1) * strength)
    t = source.t + (driving.t - neutral.t) * strength
    return place_keypoints(source.kp, rotation, exp, scale, t)


def absolute_keypoints(source: MotionInfo, driving: MotionInfo) -> torch.Tensor:
    """The source's canonical keypoints in the driving face's pose and expression, at the source's scale."""
    return place_keypoints(source.kp, driving.rotation, driving.exp, source.scale, driving.t)

