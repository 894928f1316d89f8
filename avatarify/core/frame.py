"""The frame contract every engine honours: the square size it sees, how frames become that size, how an avatar
is named by its content, and what the real-time loop, the offline renderer and the remote worker may call.

Numpy and OpenCV only: the thin client (no torch) uses this to talk to a remote model.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from .faces import center_crop, cut_square
from .images import to_rgb_uint8

FRAME_SIZE = 256


@dataclass(frozen=True)
class MotionOptions:
    """How the driving face's motion reaches the avatar; replaced as a whole, so a frame never sees half a change.

    `relative`: motion relative to the neutral pose (else the driving keypoints as they are); `adapt_movement_scale`:
    scaled to the avatar's face size; `motion_strength`: a multiplier on the relative motion (1.0 = the model's own).
    """

    relative: bool = True
    adapt_movement_scale: bool = True
    motion_strength: float = 1.0


@runtime_checkable
class AvatarPredictor(Protocol):
    """What the real-time loop, the offline renderer and the worker need from an engine, local or remote."""

    motion: MotionOptions

    @property
    def device_name(self) -> str:
        """Where the model runs, for the status bar ("cpu", "cuda:0", "remote tcp://host:5557 (connecting)")."""
        ...

    def set_avatar(self, image: np.ndarray) -> None:
        """Make `image` (any size, grayscale/RGB/RGBA) the avatar."""
        ...

    def calibrate(self) -> None:
        """Take the next driving frame as the neutral pose."""
        ...

    def set_neutral(self, frame: np.ndarray) -> None:
        """Take `frame` as the neutral pose now."""
        ...

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """The avatar animated by one driving frame: FRAME_SIZE square RGB uint8 in, a square RGB uint8 image out
        whose side depends on the engine (FRAME_SIZE for FOMM, 512 for LivePortrait)."""
        ...

    def close(self) -> None:
        """Release what the engine holds (threads, sockets, memory); calling it twice is harmless."""
        ...


def is_prepared(image: np.ndarray, size: int = FRAME_SIZE) -> bool:
    """Whether `image` already is a contiguous size x size RGB uint8 frame (nothing left to convert)."""
    return (
        isinstance(image, np.ndarray)
        and image.shape == (size, size, 3)
        and image.dtype == np.uint8
        and image.flags.c_contiguous
    )


def prepare_frame(image: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Any RGB-like image as a size x size RGB uint8 array (centre square crop, then resize).

    A frame that already has that form is returned as it is, not copied: the pipeline crops once.
    """
    if is_prepared(image, size):
        return image
    rgb = to_rgb_uint8(image)
    return cut_square(rgb, center_crop(rgb.shape), size)


def content_key(image: np.ndarray) -> str:
    """A hash of an image's pixels and shape, identifying an avatar whatever object holds it."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16)
    digest.update(repr(image.shape).encode())
    return digest.hexdigest()
