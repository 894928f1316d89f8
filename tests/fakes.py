"""Fast stand-ins for the pipeline's parts, for tests of its bookkeeping; and a pyvirtualcam test backend.

The fakes keep the real interfaces (FrameSource, AvatarPredictor, the landmark source, pyvirtualcam's backend
API); tests with the real camera sources, model and Qt window live beside the ones using these.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pyvirtualcam
from pyvirtualcam.util import decode_fourcc

from avatarify.core.errors import EngineUnavailable
from avatarify.core.frame import MotionOptions, prepare_frame

BACKEND = "avatarify-test"
WAIT = 120.0  # guards against hangs only; never a speed requirement


class RecordingBackend:
    """A pyvirtualcam backend that keeps every frame it is sent, as an app reading the camera would see it.

    Device "missing" behaves like an absent virtual camera.
    """

    opened: list[RecordingBackend] = []

    def __init__(self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw) -> None:
        if device == "missing":
            raise RuntimeError("device missing does not exist")
        self.width, self.height, self.fps = width, height, fps
        self.fourcc = decode_fourcc(fourcc)
        self.name = device or "Test Camera"
        self.frames: list[np.ndarray] = []
        self.closed = False
        RecordingBackend.opened.append(self)

    def send(self, frame: np.ndarray) -> None:
        assert frame.dtype == np.uint8 and frame.flags["C_CONTIGUOUS"]
        self.frames.append(frame.reshape(self.height, self.width, 3).copy())

    def close(self) -> None:
        self.closed = True

    def device(self) -> str:
        return self.name

    def native_fourcc(self) -> int | None:
        return None


pyvirtualcam.register_backend(BACKEND, RecordingBackend)


def backends_for(device: str) -> list[RecordingBackend]:
    return [backend for backend in RecordingBackend.opened if backend.name == device]


def numbered_frame(index: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A camera frame whose pixels tell which frame it is (and differ across the picture)."""
    h, w = size
    ramp = np.add.outer(np.arange(h), np.arange(w)) % 200
    return np.stack([ramp, np.full((h, w), index % 256), 255 - ramp], axis=2).astype(np.uint8)


class FakeCamera:
    """A FrameSource delivering numbered frames at `fps` (0: as fast as they are read)."""

    def __init__(self, name: str = "fake camera", fps: float = 50.0, size: tuple[int, int] = (240, 320)) -> None:
        self.name, self.fps, self.size = name, fps, (size[1], size[0])
        self._shape = size
        self.frames_read = 0
        self.closed = threading.Event()
        self.failure: Exception | None = None
        self.timestamp = 0.0
        self._next = time.monotonic()

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        if self.failure is not None:
            raise self.failure
        if self.closed.is_set():
            return None
        if self.fps:
            wait = self._next - time.monotonic()
            if wait > timeout:
                time.sleep(timeout)
                return None
            time.sleep(max(0.0, wait))
            self._next = max(self._next + 1.0 / self.fps, time.monotonic())
        self.frames_read += 1
        self.timestamp = time.monotonic()
        return numbered_frame(self.frames_read, self._shape)

    def close(self) -> None:
        self.closed.set()


class FakePredictor:
    """An AvatarPredictor that returns the avatar tinted by the driving frame's mean, after `delay` seconds.

    `unavailable` makes `predict` raise EngineUnavailable (a worker away); every call is counted.
    """

    def __init__(self, delay: float = 0.0, device_name: str = "fake") -> None:
        self.delay = delay
        self.device_name = device_name
        self.motion = MotionOptions()
        self.avatar: np.ndarray | None = None
        self.avatar_sets = 0
        self.calibrations = 0
        self.neutral_frames: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.motions: list[MotionOptions] = []
        self.unavailable: str | None = None
        self.state = "connected"  # as a remote predictor reports its connection
        self.problem: str | None = None
        self.closed = 0

    def set_avatar(self, image: np.ndarray) -> None:
        self.avatar = prepare_frame(image)
        self.avatar_sets += 1

    def calibrate(self) -> None:
        self.calibrations += 1

    def set_neutral(self, frame: np.ndarray) -> None:
        self.neutral_frames.append(frame)

    def predict(self, frame: np.ndarray) -> np.ndarray:
        if self.unavailable:
            raise EngineUnavailable(self.unavailable)
        if self.avatar is None:
            raise RuntimeError("No avatar set")
        self.faces.append(frame)
        self.motions.append(self.motion)
        if self.delay:
            time.sleep(self.delay)
        return self.result(self.avatar, frame)

    @staticmethod
    def result(avatar: np.ndarray, frame: np.ndarray) -> np.ndarray:
        return (avatar // 2 + frame.mean(axis=(0, 1)).astype(np.uint8) // 2).astype(np.uint8)

    def close(self) -> None:
        self.closed += 1


class FakeLandmarks:
    """A landmark source finding 68 points on a circle in every face; `state` as the real one reports it."""

    def __init__(self, state: str = "ready", fails: bool = False) -> None:
        self.state = state
        self.fails = fails
        self.calls = 0

    @property
    def unavailable(self) -> bool:
        return self.state.startswith("unavailable")

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        self.calls += 1
        if self.fails:
            raise RuntimeError("landmark network failed")
        angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
        shift = float(image.mean()) / 50.0
        return np.stack([128 + 60 * np.cos(angles) + shift, 128 + 80 * np.sin(angles)], axis=1).astype(np.float32)


def eventually(condition, what: str, timeout: float = WAIT) -> None:
    """Wait until `condition()` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
