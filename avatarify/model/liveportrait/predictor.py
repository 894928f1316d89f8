"""The per-frame LivePortrait engine: the avatar prepared once, then motion, stitching, warp and decode per frame."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
import torch

from ...core.frame import MotionOptions, content_key, prepare_frame
from ..fomm.optimize import PRECISIONS
from ..frames import AvatarCache, HoldsAvatars, image_to_tensor, tensor_to_image
from .keypoints import MotionInfo, absolute_keypoints, relative_keypoints, transform_keypoints
from .model import LivePortrait
from .warping import Warped, WarpSource

log = logging.getLogger(__name__)

# A prepared avatar of the published model holds about 15 MB (its feature volume, compressed volume and heat maps).
AVATAR_CACHE_SIZE = 8
# Devices whose float16 kernels are fast; elsewhere "auto" keeps the decoder in float32.
HALF_PRECISION_DEVICES = ("cuda", "mps")


@dataclass(frozen=True)
class PreparedAvatar:
    """An avatar's 256x256 image with its motion parameters, keypoints and the warp's share of it, computed once."""

    image: np.ndarray
    info: MotionInfo
    keypoints: torch.Tensor
    warp_source: WarpSource


def decoder_dtype(model: LivePortrait, precision: str) -> torch.dtype:
    """Put the decoder in the precision asked for ("auto": float16 on CUDA and Apple GPUs, else float32), falling
    back to float32 where the device has no kernels for it. Keypoints and motion always stay in float32: the warp
    amplifies their rounding."""
    if precision != "auto" and precision not in PRECISIONS:
        raise ValueError(f"precision must be auto, {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        dtype = torch.float16 if model.device.type in HALF_PRECISION_DEVICES else torch.float32
    else:
        dtype = PRECISIONS[precision]
    decoder = model.spade_generator.to(dtype)
    if dtype == torch.float32:
        return dtype
    try:
        with torch.no_grad():
            decoder(torch.zeros(1, decoder.in_channels, 4, 4, dtype=dtype, device=model.device))
    except RuntimeError:
        log.warning("%s is not supported for the decoder on %s; using float32.", dtype, model.device, exc_info=True)
        decoder.float()
        return torch.float32
    return dtype


class LivePortraitPredictor(HoldsAvatars):
    """Animates a still avatar with driving frames through LivePortrait, relative to a neutral pose.

    `set_avatar` computes the avatar's feature volume, motion parameters, keypoints and the warp's avatar-only
    inputs once (cached by content). Each frame then costs the motion extractor on the driving crop, the relative
    motion from the neutral frame (the first frame after construction or `calibrate()`), stitching, the warp and
    the decoder. Output: `output_size` square RGB uint8 (512 for the published model) from 256x256 inputs.
    `motion.relative=False` places the avatar in the driving face's own pose and expression; `motion_strength`
    scales the relative motion; `adapt_movement_scale` has no effect (motion is relative to the avatar's own scale).
    Every public method holds one lock, so several threads may share a predictor.
    """

    def __init__(self, model: LivePortrait, motion: MotionOptions | None = None, precision: str = "auto") -> None:
        self.model = model
        self.decoder_dtype = decoder_dtype(model, precision)
        log.info("LivePortrait on %s, decoder in %s", model.device, self.decoder_dtype)
        self.motion = motion or MotionOptions()
        self._avatars: AvatarCache[PreparedAvatar] = AvatarCache(AVATAR_CACHE_SIZE)
        self._avatar: PreparedAvatar | None = None
        self._neutral: MotionInfo | None = None
        self._lock = threading.RLock()

    @property
    def device_name(self) -> str:
        return str(self.model.device)

    @property
    def output_size(self) -> int:
        return self.model.output_size

    @property
    def neutral(self) -> MotionInfo | None:
        """The neutral pose's motion parameters, or None until the next frame sets it."""
        with self._lock:
            return self._neutral

    @torch.no_grad()
    def motion_of(self, frame: np.ndarray) -> MotionInfo:
        """The motion parameters of a face (any size, centre-cropped to 256x256)."""
        return self.model.motion(image_to_tensor(prepare_frame(frame), self.model.device))

    @torch.no_grad()
    def set_avatar(self, image: np.ndarray) -> None:
        """Make `image` (any size, grayscale/RGB/RGBA) the avatar; what the model computes from it is cached."""
        prepared_image = prepare_frame(image)
        key = content_key(prepared_image)
        with self._lock:
            self._avatar = self._avatars.get(key, lambda: self._prepare(prepared_image))

    def _prepare(self, image: np.ndarray) -> PreparedAvatar:
        source = image_to_tensor(image, self.model.device)
        info = self.model.motion(source)
        keypoints = transform_keypoints(info)
        volume = self.model.appearance_feature_extractor(source)
        return PreparedAvatar(image, info, keypoints, self.model.warping_module.prepare(volume, keypoints))

    def calibrate(self) -> None:
        """Take the next driving frame as the neutral pose."""
        with self._lock:
            self._neutral = None

    def set_neutral(self, frame: np.ndarray) -> None:
        """Take `frame` as the neutral pose now."""
        info = self.motion_of(frame)
        with self._lock:
            self._neutral = info

    def _current_avatar(self) -> PreparedAvatar:
        if self._avatar is None:
            raise RuntimeError("No avatar set; call set_avatar() first.")
        return self._avatar

    @torch.no_grad()
    def driving_keypoints(self, frame: np.ndarray) -> torch.Tensor:
        """The avatar's keypoints moved by a driving frame, after stitching: 1 x K x 3."""
        driving = self.motion_of(frame)
        with self._lock:
            avatar, motion = self._current_avatar(), self.motion
            if self._neutral is None:
                self._neutral = driving
            if motion.relative:
                moved = relative_keypoints(avatar.info, driving, self._neutral, motion.motion_strength)
            else:
                moved = absolute_keypoints(avatar.info, driving)
            return self.model.stitching_retargeting_module(avatar.keypoints, moved)

    @torch.no_grad()
    def warp(self, keypoints: torch.Tensor) -> Warped:
        """The avatar's feature volume warped to `keypoints` (float32)."""
        with self._lock:
            return self.model.warping_module(self._current_avatar().warp_source, keypoints)

    @torch.no_grad()
    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """The decoder's picture of warped features, in the decoder's precision: 1 x 3 x S x S in [0, 1]."""
        return self.model.spade_generator(features.to(self.decoder_dtype))

    def animate_frame(self, frame: np.ndarray) -> torch.Tensor:
        """The model's output for one driving frame: 1 x 3 x S x S, values in [0, 1]."""
        with self._lock:
            return self.decode(self.warp(self.driving_keypoints(frame)).features)

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """Animate the avatar with one driving frame (ideally 256x256 RGB uint8) -> S x S RGB uint8."""
        return tensor_to_image(self.animate_frame(frame))

    def close(self) -> None:
        """Forget the prepared avatars; the model itself stays usable by other predictors."""
        with self._lock:
            self._avatars.clear()
            self._avatar = None
            self._neutral = None
