"""FOMM for many sessions at once: one model call animates frames of different avatars, against different neutral
poses and with different motion options, as the serving deployment batches them.

Each frame's result equals what a `Predictor` holding that session's avatar and neutral pose returns, to float
rounding: the keypoint detector, the dense motion network, the warp and the decoder simply run on N frames instead
of one. The session state a `Predictor` keeps (the neutral pose) travels with each job instead, so that any replica
can serve any session.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.frame import MotionOptions, prepare_frame
from .fomm import FOMM, SourceEncoding
from .fomm.motion import Keypoints, movement_scale, relative_keypoints
from .fomm.optimize import enable_fast_paths
from .predictor import PreparedAvatar, prepare_avatar

log = logging.getLogger(__name__)

_FLOAT = np.dtype("<f4")


@dataclass(frozen=True)
class Pose:
    """A face's keypoints without torch: K x 2 positions and K x 2 x 2 jacobians (float32); a session's neutral pose
    travels as one."""

    value: np.ndarray
    jacobian: np.ndarray

    def to_bytes(self) -> bytes:
        """Positions then jacobians, little-endian float32: 24 bytes per keypoint."""
        return self.value.astype(_FLOAT).tobytes() + self.jacobian.astype(_FLOAT).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, num_kp: int) -> Pose:
        """The pose `to_bytes` wrote, for a model with `num_kp` keypoints; ValueError if `data` is not one."""
        if len(data) != num_kp * 6 * _FLOAT.itemsize:
            raise ValueError(f"a pose of {len(data)} bytes, expected {num_kp * 6 * _FLOAT.itemsize}")
        numbers = np.frombuffer(data, dtype=_FLOAT)
        if not np.isfinite(numbers).all():
            raise ValueError("a pose with non-finite numbers")
        return cls(numbers[: num_kp * 2].reshape(num_kp, 2).copy(), numbers[num_kp * 2 :].reshape(num_kp, 2, 2).copy())


@dataclass
class FrameJob:
    """One session's frame in a batch: its avatar, the 256x256 RGB uint8 driving frame, the session's neutral pose
    (None: this frame is the neutral pose, as the first frame after calibrating is) and its motion options."""

    avatar: PreparedAvatar
    frame: np.ndarray
    neutral: Pose | None
    motion: MotionOptions = field(default_factory=MotionOptions)


@dataclass
class BatchResult:
    """The animated frames (256x256 RGB uint8), each frame's own pose (a calibration frame's becomes its session's
    neutral pose) and the time each stage took for the whole batch, in ms."""

    images: list[np.ndarray]
    poses: list[Pose]
    stage_ms: dict[str, float]


class BatchAnimator:
    """Runs one FOMM on batches of frames from many sessions; stateless between calls, so any session's frame may
    join any batch. Not thread-safe: one caller at a time (a serving replica runs one batch at a time)."""

    def __init__(self, model: FOMM, precision: str = "auto", optimize: bool = True) -> None:
        self.model = model
        self.fast_path = (
            enable_fast_paths(model.kp_detector, model.generator, precision) if optimize else "fp32, as published"
        )
        log.info("Batched model on %s: %s", model.device, self.fast_path)

    @property
    def num_kp(self) -> int:
        return self.model.kp_detector.kp.out_channels

    @property
    def device_name(self) -> str:
        return str(self.model.device)

    def prepare_avatar(self, image: np.ndarray) -> PreparedAvatar:
        """An avatar (any size, grayscale/RGB/RGBA) with its keypoints and encoding, ready to join batches."""
        return prepare_avatar(self.model, prepare_frame(image))

    @torch.no_grad()
    def poses(self, frames: list[np.ndarray]) -> list[Pose]:
        """The keypoints of 256x256 RGB uint8 frames, in one call of the detector (neutral poses are these)."""
        return _poses(self.model.kp_detector(self._tensor(frames)))

    @torch.no_grad()
    def animate(self, jobs: list[FrameJob]) -> BatchResult:
        """Every job's frame animated, in one call of each network."""
        started = time.perf_counter()
        kp_driving = self.model.kp_detector(self._tensor([job.frame for job in jobs]))
        self._synchronize()
        detected = time.perf_counter()
        kp_source = {name: torch.cat([job.avatar.kp[name] for job in jobs]) for name in kp_driving}
        kp_norm = self._moved_keypoints(jobs, kp_source, kp_driving)
        encoding = SourceEncoding(*(torch.cat(parts) for parts in zip(*(_encoding(job.avatar) for job in jobs))))
        prediction = self.model.generator.animate(encoding, kp_driving=kp_norm, kp_source=kp_source)["prediction"]
        images = prediction.float().clamp_(0, 1).mul_(255.0).round_().byte().permute(0, 2, 3, 1).cpu().numpy()
        finished = time.perf_counter()
        stages = {"keypoints": (detected - started) * 1000.0, "generator": (finished - detected) * 1000.0}
        return BatchResult(list(images), _poses(kp_driving), stages)

    def _moved_keypoints(self, jobs: list[FrameJob], kp_source: Keypoints, kp_driving: Keypoints) -> Keypoints:
        """Each frame's keypoints as the avatar should take them: relative to its session's neutral pose, scaled,
        or (absolute motion) the driving keypoints as they are."""
        neutral = self._neutral_keypoints(jobs, kp_driving)
        scales, strengths = [], []
        for i, job in enumerate(jobs):
            motion = job.motion
            scale = 1.0
            if motion.relative and motion.adapt_movement_scale:
                scale = movement_scale(job.avatar.kp, {"value": neutral["value"][i : i + 1]})
            scales.append(scale * motion.motion_strength)
            strengths.append(motion.motion_strength)
        relative = relative_keypoints(
            kp_source, kp_driving, neutral, self._vector(scales), use_relative_jacobian=True,
            jacobian_strength=self._vector(strengths),
        )  # fmt: skip
        is_relative = torch.tensor([job.motion.relative for job in jobs], device=self.model.device)
        return {
            name: torch.where(is_relative.view(-1, *[1] * (kp_driving[name].dim() - 1)), relative[name], kp_driving[name])
            for name in kp_driving
        }

    def _neutral_keypoints(self, jobs: list[FrameJob], kp_driving: Keypoints) -> Keypoints:
        """The sessions' neutral poses, each frame that is its session's new neutral pose standing for itself."""
        device = self.model.device
        neutral = {name: tensor.clone() for name, tensor in kp_driving.items()}
        for i, job in enumerate(jobs):
            if job.neutral is not None:
                neutral["value"][i] = torch.from_numpy(job.neutral.value).to(device)
                neutral["jacobian"][i] = torch.from_numpy(job.neutral.jacobian).to(device)
        return neutral

    def _tensor(self, frames: list[np.ndarray]) -> torch.Tensor:
        batch = torch.from_numpy(np.stack([prepare_frame(frame) for frame in frames])).to(self.model.device)
        return batch.permute(0, 3, 1, 2).float().div_(255.0)

    def _vector(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=self.model.device)

    def _synchronize(self) -> None:
        # GPU work runs asynchronously: without waiting, the stage times would only measure the launches.
        if self.model.device.type == "cuda":
            torch.cuda.synchronize(self.model.device)


def _encoding(avatar: PreparedAvatar) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    encoding = avatar.encoding
    return encoding.image, encoding.features, encoding.downsampled


def _poses(keypoints: Keypoints) -> list[Pose]:
    values = keypoints["value"].float().cpu().numpy()
    jacobians = keypoints["jacobian"].float().cpu().numpy()
    return [Pose(value, jacobian) for value, jacobian in zip(values, jacobians)]
