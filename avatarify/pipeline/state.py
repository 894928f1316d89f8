"""What the pipeline's threads share, as one immutable snapshot that is replaced whole.

A thread reads `SharedState.current` once per frame and works with that snapshot: a change made meanwhile
(another avatar, new settings, a new camera) reaches it with the next frame, never half-way through one.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.frame import AvatarPredictor, MotionOptions, content_key, prepare_frame
from ..core.settings import Settings
from .camera import FrameSource
from .vcam import VirtualCameraOutput


class LandmarkSource(Protocol):
    """68-point face landmarks, possibly loading in the background or unavailable (`state` says why)."""

    state: str

    @property
    def unavailable(self) -> bool: ...

    def landmarks(self, image: np.ndarray) -> np.ndarray | None: ...


@dataclass(frozen=True)
class Avatar:
    """The avatar being driven: its FRAME_SIZE picture (prepared once), content key and name."""

    image: np.ndarray
    key: str
    name: str = ""

    @classmethod
    def from_picture(cls, picture: np.ndarray, name: str = "") -> Avatar:
        image = prepare_frame(picture)
        return cls(image=image, key=content_key(image), name=name)


@dataclass(frozen=True)
class Snapshot:
    """Everything the stages use, at one moment. The epochs count calibrations and crop resets."""

    settings: Settings = Settings()
    camera: FrameSource | None = None
    predictor: AvatarPredictor | None = None
    output: VirtualCameraOutput | None = None
    landmarks: LandmarkSource | None = None
    avatar: Avatar | None = None
    crop_epoch: int = 0
    pose_epoch: int = 0

    @property
    def animating(self) -> bool:
        """Whether the model should run: a model, an avatar, and not passthrough."""
        return self.predictor is not None and self.avatar is not None and not self.settings.passthrough

    @property
    def wants_landmarks(self) -> bool:
        return self.settings.show_landmarks or self.settings.find_best_frame

    @property
    def motion(self) -> MotionOptions:
        s = self.settings
        return MotionOptions(s.relative, s.adapt_scale, s.motion_strength)


class SharedState:
    """Holds the current snapshot; `replace` swaps in a changed copy under a lock and returns (old, new)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._current = snapshot
        self._lock = threading.Lock()

    @property
    def current(self) -> Snapshot:
        return self._current

    def replace(self, **changes: object) -> tuple[Snapshot, Snapshot]:
        with self._lock:
            old = self._current
            self._current = dataclasses.replace(old, **changes)
            return old, self._current

    def bump(self, epoch: str) -> None:
        """Count one more calibration ("pose_epoch") or crop reset ("crop_epoch")."""
        with self._lock:
            self._current = dataclasses.replace(self._current, **{epoch: getattr(self._current, epoch) + 1})
