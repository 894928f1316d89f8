"""The per-frame animation engine the real-time loop calls: avatar set once, one driving frame at a time."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.frame import FRAME_SIZE, MotionOptions, content_key, prepare_frame
from .fomm import FOMM, SourceEncoding
from .fomm.motion import Keypoints, movement_scale, relative_keypoints
from .fomm.optimize import enable_fast_paths
from .frames import AvatarCache, HoldsAvatars, image_to_tensor, tensor_to_image

log = logging.getLogger(__name__)

AVATAR_CACHE_SIZE = 16


@dataclass
class PreparedAvatar:
    """An avatar's 256x256 image with its keypoints and the engine's encoding of it, computed once."""

    image: np.ndarray
    kp: Keypoints
    encoding: Any


@torch.no_grad()
def prepare_avatar(model: FOMM, image: np.ndarray) -> PreparedAvatar:
    """The keypoints and encoding of a prepared (256x256 RGB uint8) avatar image, by the torch model."""
    source = image_to_tensor(image, model.device)
    return PreparedAvatar(image=image, kp=model.kp_detector(source), encoding=model.generator.encode(source))


class PredictorBase(HoldsAvatars):
    """The engine-independent half of a FOMM predictor: avatar cache, neutral pose and motion transfer.

    `set_avatar` computes the avatar's keypoints and encoding once (cached by content, so switching back to an
    earlier avatar is instant); each `predict` then detects the driving frame's keypoints, moves them relative to
    the neutral pose (or not, in absolute mode) and renders. The first frame after construction, or after
    `calibrate()`, becomes the neutral pose. `motion` holds the motion options; assign a new `MotionOptions` to
    change them. Every public method holds one lock, so the real-time loop, the analysis thread and the worker
    can share a predictor.

    Engines (torch, ONNX Runtime) supply `device`, `device_name` and three steps on 1 x 3 x 256 x 256 float
    tensors in [0, 1]: `_keypoints`, `_encode` and `_render`. Keypoints are torch tensors on `device`.
    `warnings` lists what the user should know about where the model really runs (empty when all is as chosen);
    `backend_reason` says why this engine was chosen.
    """

    backend = "torch"

    def __init__(self, motion: MotionOptions | None = None) -> None:
        self.motion = motion or MotionOptions()
        self.warnings: list[str] = []
        self.backend_reason = ""
        self._avatars: AvatarCache[PreparedAvatar] = AvatarCache(AVATAR_CACHE_SIZE)
        self._avatar: PreparedAvatar | None = None
        self._kp_neutral: Keypoints | None = None
        self._scale_for: tuple[PreparedAvatar, Keypoints, float] | None = None
        self._lock = threading.RLock()

    @property
    def device(self) -> torch.device:
        """Where the keypoints and images this predictor exchanges live."""
        raise NotImplementedError

    @property
    def device_name(self) -> str:
        raise NotImplementedError

    @property
    def status_note(self) -> str:
        """The warnings as one line for a status bar ("" when there is nothing to say)."""
        return "; ".join(self.warnings)

    def _keypoints(self, image: torch.Tensor) -> Keypoints:
        raise NotImplementedError

    def _encode(self, image: torch.Tensor) -> Any:
        raise NotImplementedError

    def _render(self, encoding: Any, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        """The side of the square frames `predict` returns (LivePortrait's predictor returns 512)."""
        return FRAME_SIZE

    @property
    def neutral_keypoints(self) -> Keypoints | None:
        """Keypoints of the neutral pose, or None until the next frame sets it."""
        with self._lock:
            return self._kp_neutral

    def to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        """A 256x256 RGB uint8 frame as a 1 x 3 x 256 x 256 float tensor in [0, 1] on the predictor's device."""
        return image_to_tensor(frame, self.device)

    @staticmethod
    def to_image(prediction: torch.Tensor) -> np.ndarray:
        """A 1 x 3 x H x W tensor in [0, 1] as an H x W x 3 uint8 array."""
        return tensor_to_image(prediction)

    @torch.no_grad()
    def detect_keypoints(self, frame: np.ndarray) -> Keypoints:
        """Keypoints of a frame (any size, centre-cropped to 256x256)."""
        tensor = self.to_tensor(prepare_frame(frame))
        with self._lock:
            return self._keypoints(tensor)

    @torch.no_grad()
    def set_avatar(self, image: np.ndarray) -> None:
        """Make `image` (any size, grayscale/RGB/RGBA) the avatar; its encoding is cached by content."""
        prepared_image = prepare_frame(image)
        key = content_key(prepared_image)
        with self._lock:
            self._avatar = self._avatars.get(key, lambda: self._prepare(prepared_image))

    def _prepare(self, image: np.ndarray) -> PreparedAvatar:
        source = self.to_tensor(image)
        return PreparedAvatar(image=image, kp=self._keypoints(source), encoding=self._encode(source))

    def calibrate(self) -> None:
        """Take the next driving frame as the neutral pose."""
        with self._lock:
            self._kp_neutral = None

    def set_neutral(self, frame: np.ndarray) -> None:
        """Take `frame` as the neutral pose now."""
        with self._lock:
            self._kp_neutral = self.detect_keypoints(frame)

    @torch.no_grad()
    def animate_frame(self, frame: np.ndarray) -> torch.Tensor:
        """The model's output for one driving frame: 1 x 3 x 256 x 256, values in [0, 1]."""
        driving = self.to_tensor(prepare_frame(frame))
        with self._lock:
            if self._avatar is None:
                raise RuntimeError("No avatar set; call set_avatar() first.")
            motion = self.motion
            kp_driving = self._keypoints(driving)
            if self._kp_neutral is None:
                self._kp_neutral = kp_driving
            kp_norm = kp_driving
            if motion.relative:
                scale = self._adapt_scale() if motion.adapt_movement_scale else 1.0
                kp_norm = relative_keypoints(
                    self._avatar.kp, kp_driving, self._kp_neutral, scale * motion.motion_strength,
                    use_relative_jacobian=True, jacobian_strength=motion.motion_strength,
                )
            return self._render(self._avatar.encoding, self._avatar.kp, kp_norm)

    def _adapt_scale(self) -> float:
        """FOMM's adapt scale for the current avatar and neutral pose, computed once per pair."""
        avatar, neutral = self._avatar, self._kp_neutral
        if self._scale_for is None or self._scale_for[0] is not avatar or self._scale_for[1] is not neutral:
            self._scale_for = (avatar, neutral, movement_scale(avatar.kp, neutral))
        return self._scale_for[2]

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Animate the avatar with one driving frame (ideally 256x256 RGB uint8) -> 256x256 RGB uint8."""
        return self.to_image(self.animate_frame(frame))

    def close(self) -> None:
        """Forget the cached avatar encodings; the model itself stays usable by other predictors."""
        with self._lock:
            self._avatars.clear()
            self._avatar = None
            self._kp_neutral = None
            self._scale_for = None


class Predictor(PredictorBase):
    """Animates a still avatar with driving frames using relative (or absolute) FOMM motion transfer, in torch.

    With `optimize` (the default) the model is rewritten in place for speed (see
    `avatarify.model.fomm.optimize`); `precision` picks the decoder's number type ("auto" chooses per device).
    """

    def __init__(
        self,
        model: FOMM,
        motion: MotionOptions | None = None,
        precision: str = "auto",
        optimize: bool = True,
    ) -> None:
        super().__init__(motion)
        self.model = model
        self.fast_path = (
            enable_fast_paths(model.kp_detector, model.generator, precision) if optimize else "fp32, as published"
        )
        log.info("Model on %s: %s", model.device, self.fast_path)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def device_name(self) -> str:
        return str(self.model.device)

    def _keypoints(self, image: torch.Tensor) -> Keypoints:
        return self.model.kp_detector(image)

    def _encode(self, image: torch.Tensor) -> SourceEncoding:
        return self.model.generator.encode(image)

    def _render(self, encoding: SourceEncoding, kp_source: Keypoints, kp_driving: Keypoints) -> torch.Tensor:
        return self.model.generator.animate(encoding, kp_driving=kp_driving, kp_source=kp_source)["prediction"]
