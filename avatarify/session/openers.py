"""How a session opens its parts. The defaults open real devices and models; tests may pass their own."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..core.frame import AvatarPredictor, MotionOptions
from ..core.settings import Settings
from ..model.loader import ModelOptions, create_predictor, model_installed
from ..pipeline.camera import FrameSource, open_source
from ..pipeline.state import LandmarkSource
from ..pipeline.vcam import VirtualCameraOutput
from ..remote.options import RemoteOptions


class NoLandmarks:
    """Stands in for the landmark network where it cannot exist (an installation without the model)."""

    state = "unavailable: face landmarks need the model; install it with `pip install 'avatarify[model]'`"
    unavailable = True

    def landmarks(self, image: np.ndarray) -> None:
        return None

    def close(self) -> None:
        """Nothing to release."""


def landmark_detector(device: str) -> LandmarkSource:
    """face-alignment's network on `device`, loading on first use; a stand-in where the model is not installed."""
    if not model_installed():
        return NoLandmarks()
    from ..model.landmarks import LandmarkDetector

    return LandmarkDetector(device=device)


def connect_worker(options: RemoteOptions, motion: MotionOptions) -> AvatarPredictor:
    """A predictor on the worker; it connects in the background, so this never blocks."""
    from ..remote.client import connect

    return connect(options, motion)


def virtual_camera(settings: Settings) -> VirtualCameraOutput:
    """The virtual camera the settings name; it opens its device with the first frame."""
    return VirtualCameraOutput(device=settings.vcam_device or None, backend=settings.vcam_backend or None)


@dataclass(frozen=True)
class Openers:
    """One function per part: camera (spec, width, height, fps), local and remote model, virtual camera, landmarks."""

    camera: Callable[[str, int | None, int | None, float | None], FrameSource] = open_source
    local_model: Callable[[ModelOptions, MotionOptions], AvatarPredictor] = create_predictor
    remote_model: Callable[[RemoteOptions, MotionOptions], AvatarPredictor] = connect_worker
    vcam: Callable[[Settings], VirtualCameraOutput] = virtual_camera
    landmarks: Callable[[str], LandmarkSource] = landmark_detector
