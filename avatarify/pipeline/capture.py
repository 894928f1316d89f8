"""The capture stage: the newest camera frame, its crop (manual or following the face), cut to the model's square
once, handed to the model, the analysis and the output."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..core.faces import cut_square
from ..core.frame import FRAME_SIZE
from .camera import FrameSource
from .crop import CropController
from .frames import Captured
from .problems import ProblemBoard, one_line
from .stage import Stage
from .state import SharedState
from .stats import StageTimes

READ_TIMEOUT = 0.5
CAMERA_RETRY_WAIT = 0.2
STALL_REPORT_AFTER = 3.0


class CaptureStage(Stage[tuple[FrameSource, np.ndarray, float]]):
    """Reads the snapshot's camera (its in-queue is the camera's newest-frame slot) and routes each frame."""

    name = "capture"

    def __init__(
        self,
        state: SharedState,
        problems: ProblemBoard,
        times: StageTimes,
        route: Callable[[Captured], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.state, self.problems, self.times, self.route, self.clock = state, problems, times, route, clock
        self._crop = CropController()
        self._crop_for: tuple[object, int, bool] | None = None
        self._stalled_since: float | None = None

    def next_item(self) -> tuple[FrameSource, np.ndarray, float] | None:
        camera = self.state.current.camera
        if camera is None:
            self._stopping.wait(READ_TIMEOUT)
            return None
        try:
            frame = camera.read(timeout=READ_TIMEOUT)
        except Exception as exc:  # any source failure: report, keep the last output, retry
            reason = str(exc) if camera.name in str(exc) else f"Camera {camera.name} lost: {exc}"
            self.problems.report("camera", f"{reason} Retrying.")
            self._stopping.wait(CAMERA_RETRY_WAIT)
            return None
        now = self.clock()
        if frame is None:
            self._stalled_since = self._stalled_since or now
            if now - self._stalled_since > STALL_REPORT_AFTER:
                self.problems.report("camera", f"{camera.name} sends no frames. Waiting for it.")
            return None
        self._stalled_since = None
        self.problems.clear("camera", f"{camera.name} is back")
        return camera, frame, now

    def handle(self, item: tuple[FrameSource, np.ndarray, float]) -> None:
        camera, frame, now = item
        grabbed = getattr(camera, "timestamp", 0.0) or now
        snapshot = self.state.current
        settings = snapshot.settings
        crop_for = (camera, snapshot.crop_epoch, settings.smart_crop)
        if crop_for != self._crop_for:  # a new camera, a reset, smart crop switched: the face filter starts over
            self._crop_for = crop_for
            self._crop.reset()
        crop = self._crop.crop(frame, grabbed, settings.smart_crop, settings.crop_zoom, settings.crop_offset)
        face = cut_square(frame, crop, FRAME_SIZE)
        self.times.record("capture", now - grabbed)
        self.times.record("crop", self.clock() - now)
        self.times.event("camera", grabbed)
        self.route(Captured(frame, crop, face, grabbed, float(getattr(camera, "fps", 0.0) or 0.0)))
        self.problems.clear("capture")

    def failed(self, exc: Exception) -> None:
        self.problems.report("capture", f"A camera frame could not be processed: {one_line(exc)}")
