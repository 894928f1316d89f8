"""Camera input: webcams, virtual cameras, video files and image folders, each read on its own thread.

Every source keeps only the newest frame, so a slow consumer never builds up latency, and a
source that fails (camera unplugged, file gone) reports why and keeps trying to reopen.
"""
from __future__ import annotations

import logging
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..core.errors import AvatarifyError, InputError
from ..core.files import is_regular_file, shown
from ..core.images import read_image
from ..core.retry import Retry
from ..core.video import media_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEFAULT_FOLDER_FPS = 25.0
DEFAULT_VIDEO_FPS = 25.0
RETRY_INTERVAL = 1.0
PROBED_INDEXES = 6


class CameraError(AvatarifyError):
    """A camera or video source cannot be opened or stopped delivering frames."""


class SourceEnded(CameraError):
    """A video played once (not looping) has no more frames; it is not reopened."""


@dataclass(frozen=True)
class CameraInfo:
    """A camera the system offers: the index OpenCV opens it by and a human name."""

    index: int
    name: str


@runtime_checkable
class FrameSource(Protocol):
    """Where camera frames come from; `read` gives the newest RGB frame not yet returned."""

    fps: float
    size: tuple[int, int]
    name: str

    def read(self, timeout: float = 1.0) -> np.ndarray | None: ...

    def close(self) -> None: ...


class ThreadedSource:
    """A frame source whose frames are grabbed on a background thread; only the newest one is kept.

    Subclasses implement `_open`, `_grab` and `_release`. A failing `_open` in the constructor
    raises `CameraError` at once (a wrong path or index); later failures are kept in `error`,
    raised from `read`, and the thread reopens the source as `retry` allows (every `retry_interval` seconds).
    """

    paced = False  # True: frames are released at `fps` (files); False: the device sets the rate

    def __init__(self, name: str, fps: float, retry_interval: float = RETRY_INTERVAL) -> None:
        self.name = name
        self.fps = fps
        self.size: tuple[int, int] = (0, 0)
        self.error: str | None = None
        self.timestamp = 0.0  # time.monotonic() when the newest frame was grabbed
        self.retry = Retry(retry_interval)
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._read_seq = 0
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._next_due = 0.0
        self._open()
        self._thread = threading.Thread(target=self._run, name=f"capture {name}", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        raise NotImplementedError

    def _grab(self) -> np.ndarray:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _pace(self) -> None:
        """Wait until the next frame is due at `fps`; a late frame is not made up for with a burst."""
        now = time.monotonic()
        self._next_due = max(self._next_due + 1.0 / self.fps, now)
        self._stop.wait(self._next_due - now)

    def _run(self) -> None:
        opened = True
        while not self._stop.is_set():
            try:
                if not opened:
                    self._open()
                    opened = True
                    self.retry.succeeded()
                    log.info("%s is delivering frames again", self.name)
                if self.paced:
                    self._pace()
                frame = self._grab()
            except SourceEnded as exc:
                self._set_error(str(exc))
                break
            except (CameraError, cv2.error, OSError) as exc:
                self._release()
                opened = False
                if str(exc) != self.error:  # the pipeline reports it to the user; this is for the debug log
                    log.debug("%s", exc)
                self._set_error(str(exc))
                self.retry.failed()
                self._stop.wait(self.retry.wait_seconds)
                continue
            self._publish(frame)
        self._release()

    def _set_error(self, message: str) -> None:
        with self._ready:
            self.error = message
            self._ready.notify_all()

    def _publish(self, frame: np.ndarray) -> None:
        now = time.monotonic()
        with self._ready:
            self.timestamp = now
            self.size = (frame.shape[1], frame.shape[0])
            self.error = None
            self._frame = frame
            self._seq += 1
            self._ready.notify_all()

    def read(self, timeout: float = 1.0) -> np.ndarray | None:
        """The newest frame not returned before, waiting up to `timeout` s; None if none came.

        Raises `CameraError` while the source is failing and no new frame is waiting.
        """
        deadline = time.monotonic() + timeout
        with self._ready:
            while self._seq == self._read_seq:
                if self.error is not None:
                    raise CameraError(self.error)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return None
                self._ready.wait(remaining)
            self._read_seq = self._seq
            return self._frame

    def close(self) -> None:
        """Stop the capture thread and release the device or file."""
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> ThreadedSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class VideoFileSource(ThreadedSource):
    """A video file played as a camera: looping, at the file's own frame rate (or `fps`)."""

    paced = True

    def __init__(self, path: str | Path, fps: float | None = None, loop: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        self._requested_fps = fps
        self._capture: cv2.VideoCapture | None = None
        self._frames_this_pass = 0
        super().__init__(name=self.path.name, fps=fps or DEFAULT_VIDEO_FPS)

    def _open(self) -> None:
        if not is_regular_file(self.path):
            raise CameraError(f"Video file {shown(self.path)} is missing; put it back or choose another camera.")
        try:
            name = media_path(self.path, "Camera file")  # OpenCV would crash on a name that is not UTF-8
        except InputError as exc:
            raise CameraError(str(exc)) from None
        capture = cv2.VideoCapture(name)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.path} is not a video OpenCV can read; choose another file.")
        file_fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = self._requested_fps or (file_fps if 1.0 <= file_fps <= 240.0 else DEFAULT_VIDEO_FPS)
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._capture = capture
        self._frames_this_pass = 0

    def _grab(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok:
            if self._frames_this_pass == 0:
                raise CameraError(f"No frames could be read from {self.path}; the file may be damaged.")
            if not self.loop:
                raise SourceEnded(f"{self.path} has ended.")
            # Reopening (rather than seeking) notices a file that was removed or replaced meanwhile.
            self._release()
            self._open()
            ok, frame = self._capture.read()
            if not ok:
                raise CameraError(f"No frames could be read from {self.path}; the file may be damaged.")
        self._frames_this_pass += 1
        return _bgr_to_rgb(frame)

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(ThreadedSource):
    """A folder of images (sorted by name) played as a looping camera at `fps`."""

    paced = True

    def __init__(self, folder: str | Path, fps: float = DEFAULT_FOLDER_FPS) -> None:
        self.folder = Path(folder)
        self._paths: list[Path] = []
        self._position = 0
        super().__init__(name=self.folder.name, fps=fps)

    def _open(self) -> None:
        if not self.folder.is_dir():
            raise CameraError(f"Image folder {self.folder} is missing; put it back or choose another camera.")
        self._paths = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise CameraError(f"{self.folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        self._position = 0

    def _grab(self) -> np.ndarray:
        if self._position >= len(self._paths):
            self._open()
        path = self._paths[self._position]
        self._position += 1
        try:
            return read_image(path)
        except AvatarifyError as exc:
            raise CameraError(str(exc)) from exc

    def _release(self) -> None:
        self._paths = []


def _capture_api() -> int:
    system = platform.system()
    if system == "Linux":
        return cv2.CAP_V4L2
    if system == "Windows":
        return cv2.CAP_DSHOW
    if system == "Darwin":
        return cv2.CAP_AVFOUNDATION
    return cv2.CAP_ANY


class DeviceCamera(ThreadedSource):
    """A webcam or virtual camera opened by index, with a requested size and rate (MJPG where offered)."""

    def __init__(
        self,
        index: int,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        name: str | None = None,
    ) -> None:
        self.index = index
        self._request = (width, height, fps)
        self._capture: cv2.VideoCapture | None = None
        super().__init__(name=name or f"Camera {index}", fps=fps or 30.0)

    def _open(self) -> None:
        if platform.system() == "Linux" and not Path(f"/dev/video{self.index}").exists():
            # Asking OpenCV would print a warning on every retry; the device node says it all.
            raise CameraError(f"{self.name} (/dev/video{self.index}) is not connected; plug it in or choose another camera.")
        capture = cv2.VideoCapture(self.index, _capture_api())
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"{self.name} (index {self.index}) cannot be opened: it is unplugged or used by another program."
            )
        width, height, fps = self._request
        # MJPG lets USB cameras deliver HD at full rate; backends that cannot honour it ignore it.
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        if width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            capture.set(cv2.CAP_PROP_FPS, fps)
        reported_fps = capture.get(cv2.CAP_PROP_FPS)
        if reported_fps and 1.0 <= reported_fps <= 240.0:
            self.fps = reported_fps
        self.size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        self._capture = capture

    def _grab(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise CameraError(f"{self.name} stopped delivering frames (unplugged or taken by another program).")
        return _bgr_to_rgb(frame)

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def _linux_cameras(root: Path = Path("/sys/class/video4linux")) -> list[CameraInfo]:
    cameras = []
    for entry in sorted(root.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else -1):
        if not entry.name[5:].isdigit():
            continue
        # A device exposes several nodes (capture, metadata); node index 0 is the one that captures.
        index_file = entry / "index"
        if index_file.is_file() and index_file.read_text().strip() not in ("", "0"):
            continue
        name_file = entry / "name"
        name = name_file.read_text().strip() if name_file.is_file() else entry.name
        cameras.append(CameraInfo(int(entry.name[5:]), name))
    return cameras


def _probe_cameras(count: int = PROBED_INDEXES) -> list[CameraInfo]:
    cameras = []
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # probing absent indexes warns about each
    try:
        for index in range(count):
            capture = cv2.VideoCapture(index, _capture_api())
            if capture.isOpened():
                cameras.append(CameraInfo(index, f"Camera {index}"))
            capture.release()
    finally:
        cv2.utils.logging.setLogLevel(level)
    return cameras


def list_cameras() -> list[CameraInfo]:
    """The cameras of this computer, virtual ones included, with names where the OS gives them."""
    if platform.system() == "Linux":
        return _linux_cameras()
    return _probe_cameras()


def open_source(
    spec: str | int | Path, width: int | None = None, height: int | None = None, fps: float | None = None
) -> FrameSource:
    """Open a camera by index or name, a video file or an image folder."""
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec.strip())
    if isinstance(spec, int):
        return DeviceCamera(spec, width, height, fps)
    path = Path(spec).expanduser()
    if os.path.isdir(path):  # never raises, even for a name too long for the file system
        return ImageFolderSource(path, fps or DEFAULT_FOLDER_FPS)
    if is_regular_file(path):
        return VideoFileSource(path, fps)
    cameras = list_cameras()
    wanted = str(spec).casefold()
    matches = [c for c in cameras if c.name.casefold() == wanted] or [
        c for c in cameras if wanted in c.name.casefold()
    ]
    if matches:
        return DeviceCamera(matches[0].index, width, height, fps, name=matches[0].name)
    found = ", ".join(f"{c.index}: {c.name}" for c in cameras) or "none"
    raise CameraError(
        f"No camera, video file or image folder called {shown(repr(str(spec)))} (cameras found: {found}); "
        "give a camera index or name, a video file or an image folder."
    )
