"""The virtual camera other apps (Zoom, Teams, OBS, browsers) see the avatar through, via pyvirtualcam."""
from __future__ import annotations

import logging
import platform
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.retry import Retry

log = logging.getLogger(__name__)

DEFAULT_FPS = 30.0
REOPEN_INTERVAL = 10.0
LOOPBACK_LABEL = "Avatarify"
VIRTUAL_V4L2_DIR = Path("/sys/devices/virtual/video4linux")
SETUP_SCRIPT = "scripts/setup-v4l2loopback.sh"


@dataclass(frozen=True)
class VcamProblem:
    """Why no virtual camera could be opened: a one-line `headline`, the `detail` behind it (the library's own
    words and the platform's advice), and `setup`, the one command or step that usually fixes it."""

    headline: str
    detail: str
    setup: str


def setup_step(system: str | None = None) -> str:
    """The platform's way to get a virtual camera, as something a user can copy or follow."""
    system = system or platform.system()
    if system == "Linux":
        return SETUP_SCRIPT
    if system == "Windows":
        return "Install OBS Studio 26 or newer (its Virtual Camera is used) or Unity Capture, then restart avatarify."
    if system == "Darwin":
        return "Install OBS Studio 30 or newer and click 'Start Virtual Camera' in OBS once, then restart avatarify."
    return "pyvirtualcam supports Linux, Windows and macOS only."


def no_virtual_camera(detail: str = "", system: str | None = None) -> VcamProblem:
    """What to do when no virtual camera could be opened, for this operating system."""
    system = system or platform.system()
    reason = " ".join(detail.split())
    if system == "Linux" and not Path("/sys/module/v4l2loopback").exists():
        headline = "No virtual camera: the v4l2loopback kernel module is not loaded."
        advice = (
            "Install it (Debian/Ubuntu: sudo apt install v4l2loopback-dkms) and load it with "
            f'`sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="{LOOPBACK_LABEL}"`, '
            f"or run {SETUP_SCRIPT}. If modprobe says 'Key was rejected by service', Secure Boot refuses the "
            "unsigned module: enrol the DKMS key (sudo mokutil --import /var/lib/dkms/mok.pub, then reboot) or turn "
            "Secure Boot off; if it says 'Module not found', install the headers for your running kernel and "
            "reinstall v4l2loopback-dkms."
        )
    elif system == "Linux":
        headline = "The virtual camera could not be opened: another program may be writing to it."
        advice = (
            "Close other programs writing to it, or load v4l2loopback with exclusive_caps=1 "
            f'card_label="{LOOPBACK_LABEL}" ({SETUP_SCRIPT}) and choose its /dev/videoN device.'
        )
    else:
        headline = "No virtual camera: OBS Studio's virtual camera is not installed."
        advice = setup_step(system)
    detail_text = f"{advice}\n\nThe virtual camera library said: {reason}" if reason else advice
    return VcamProblem(headline, detail_text, setup_step(system))


def no_virtual_camera_message(detail: str = "", system: str | None = None) -> str:
    """The problem as one line for a terminal: the headline and the advice."""
    problem = no_virtual_camera(detail, system)
    advice = problem.detail.split("\n")[0]
    return f"{problem.headline} {advice}"


def backends_here(system: str | None = None) -> list[tuple[str, str]]:
    """The pyvirtualcam backends this platform has, as (value, label); "" picks one automatically."""
    system = system or platform.system()
    found = {
        "Linux": [("v4l2loopback", "v4l2loopback")],
        "Windows": [("obs", "OBS Virtual Camera"), ("unitycapture", "Unity Capture")],
        "Darwin": [("obs", "OBS Virtual Camera")],
    }.get(system, [])
    return [("", "Automatic"), *found]


def list_virtual_cameras(system: str | None = None) -> list[str]:
    """Virtual camera devices this system offers to write to (Linux: v4l2loopback /dev/videoN)."""
    system = system or platform.system()
    if system == "Linux":
        if not VIRTUAL_V4L2_DIR.is_dir():
            return []
        return sorted(f"/dev/{entry.name}" for entry in VIRTUAL_V4L2_DIR.glob("video*"))
    if system == "Windows":
        return ["OBS Virtual Camera", "Unity Video Capture"]
    if system == "Darwin":
        return ["OBS Virtual Camera"]
    return []


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """Width and height rounded down to even numbers: YUV 4:2:0 virtual cameras need them."""
    return max(2, size[0] - size[0] % 2), max(2, size[1] - size[1] % 2)


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` scaled to fit inside `size` (width, height), centred on black."""
    width, height = size
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(image)
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


class VirtualCameraOutput:
    """A pyvirtualcam camera that opens on the first frame and reopens when the frame size changes.

    With `size` given, every frame is fitted into that size instead. When no virtual camera can be
    opened, `state` says why ("unavailable: ..."), frames are dropped and opening is retried every
    `REOPEN_INTERVAL` seconds: the app keeps running without it. After `close` (which may come
    from another thread than `send`), frames are dropped until `open` is called again.
    """

    def __init__(
        self,
        device: str | None = None,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        backend: str | None = None,
    ) -> None:
        self.device = device
        self.size = even_size(size) if size else None
        self.fps = fps
        self.backend = backend
        self.error: str | None = None
        self.problem: VcamProblem | None = None
        self._camera = None
        self._closed = False
        # `close` may run on another thread than `send`: without the lock, a send racing it could reopen the device.
        self._lock = threading.RLock()
        self._retry = Retry(REOPEN_INTERVAL)
        self._failed_size: tuple[int, int] | None = None

    @property
    def state(self) -> str:
        if self._camera is not None:
            camera = self._camera
            return f"{camera.device} {camera.width}x{camera.height}@{camera.fps:g}"
        if self.error:
            return f"unavailable: {self.error}"
        return "not started"

    def open(self, size: tuple[int, int], fps: float | None = None) -> bool:
        """Open the virtual camera for frames of `size`; False (with `error` set) when there is none."""
        import pyvirtualcam

        with self._lock:
            self._closed = False
            self._release()
            size = even_size(size)
            fps = self.fps or fps or DEFAULT_FPS
            try:
                self._camera = pyvirtualcam.Camera(
                    size[0], size[1], fps, fmt=pyvirtualcam.PixelFormat.RGB, device=self.device, backend=self.backend
                )
            except Exception as exc:  # pyvirtualcam raises RuntimeError, ValueError or backend-specific errors
                return self._fail(exc, size)
            self.error, self.problem = None, None
            self._retry.succeeded()
            log.info("Virtual camera %s", self.state)
            return True

    def send(self, frame: np.ndarray, fps: float | None = None) -> bool:
        """Send an RGB uint8 frame; opens the camera as needed. False when it is not available or closed."""
        size = self.size or even_size((frame.shape[1], frame.shape[0]))
        with self._lock:
            if self._closed:
                return False
            camera = self._camera
            if camera is None or (camera.width, camera.height) != size:
                if not self._retry.due() and self._failed_size == size:
                    return False
                if not self.open(size, fps):
                    return False
                camera = self._camera
            try:
                camera.send(np.ascontiguousarray(fit_frame(frame, size), dtype=np.uint8))
            except Exception as exc:  # the device went away under us; reopen later
                self._release()
                return self._fail(exc, size)
            return True

    def _fail(self, exc: Exception, size: tuple[int, int]) -> bool:
        problem = no_virtual_camera(str(exc))
        if problem != self.problem:  # the details once per problem; the headline is reported by whoever sends
            log.debug("%s (%s)", problem.headline, " ".join(str(exc).split()))
        self.problem, self.error = problem, problem.headline
        self._retry.failed()
        self._failed_size = size
        return False

    def close(self) -> None:
        """Release the virtual camera device (other apps then see it stop); `send` no longer reopens it."""
        with self._lock:
            self._closed = True
            self._release()

    def _release(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None

    def __enter__(self) -> VirtualCameraOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
