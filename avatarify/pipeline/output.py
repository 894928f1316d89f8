"""The output stage: draws the preview for every camera frame and sends every model result out the moment it
arrives; while the model cannot animate it holds the avatar, and shows the camera only when the user chose to."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from ..core.faces import cut_square
from ..core.frame import FRAME_SIZE
from .drawing import compose_output, output_size, render_preview
from .frames import Captured, PipelineFrame, PipelineStats, Prediction
from .problems import ProblemBoard, one_line
from .stage import Stage
from .state import SharedState, Snapshot
from .stats import StageTimes

log = logging.getLogger(__name__)

READ_TIMEOUT = 0.5
# Landmarks older than this are not drawn: the face has moved on.
LANDMARKS_MAX_AGE = 1.0
# A model slower than the camera: its last frame is sent again once this many camera intervals passed without one.
RESEND_AFTER_INTERVALS = 1.5


class OutputStage(Stage["Captured | Prediction"]):
    """Turns camera frames and model results into previews and output frames for the virtual camera and listeners.

    `stats` gives the statistics to draw and hand out; `landmarks` the newest landmarks (or None).
    """

    name = "output"

    def __init__(
        self,
        state: SharedState,
        problems: ProblemBoard,
        times: StageTimes,
        stats: Callable[[], PipelineStats],
        landmarks: Callable[[], object],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(queue_size=4, idle_timeout=READ_TIMEOUT)
        self.state, self.problems, self.times, self.clock = state, problems, times, clock
        self.stats, self.landmarks = stats, landmarks
        self.listeners: list[Callable[[PipelineFrame], None]] = []
        self._item: Captured | None = None
        self._preview: np.ndarray | None = None
        self._output: np.ndarray | None = None
        self._sent_at = 0.0
        self._model_frame: tuple[str, np.ndarray] | None = None  # (avatar key, last model square)
        self._unavailable: str | None = None

    @property
    def last_output(self) -> np.ndarray | None:
        return self._output

    def handle(self, event: Captured | Prediction) -> None:
        started = self.clock()
        if isinstance(event, Captured):
            frame = self._on_camera(event)
        else:
            frame = self._on_prediction(event)
        self.times.record("output", self.clock() - started)
        if frame is not None:
            self._emit(frame)

    def idle(self) -> None:
        """Without camera frames, keep sending the last output so other apps do not freeze or drop the camera."""
        output, last = self.state.current.output, self._output
        if output is not None and last is not None:
            output.send(last)

    def failed(self, exc: Exception) -> None:
        self.problems.report("output", f"The output stage failed: {one_line(exc)}")

    # -- camera frames --------------------------------------------------------------------------------------

    def _on_camera(self, item: Captured) -> PipelineFrame:
        snapshot = self.state.current
        settings = snapshot.settings
        self._item = item
        self._preview = self._render_preview(item, snapshot)
        size = output_size(item.frame.shape, settings.output_keep_aspect)
        animated, note = True, ""
        if settings.passthrough:
            self._send(snapshot, compose_output(cut_square(item.frame, item.crop, min(size)), size, settings.mirror_output), item)
            self.times.record("latency", self.clock() - item.t)
        elif not snapshot.animating or self._unavailable is not None or self._held_frame(snapshot) is None:
            note = self._stand_in_reason(snapshot)
            animated = False
            if settings.camera_when_unavailable:
                square = cut_square(item.frame, item.crop, min(size))
            else:
                square = self._held_frame(snapshot)
                if square is None:
                    square = snapshot.avatar.image if snapshot.avatar is not None else _black()
            self._send(snapshot, compose_output(square, size, settings.mirror_output), item)
        elif self.clock() - self._sent_at > RESEND_AFTER_INTERVALS / max(item.camera_fps, 1.0):
            self._send(snapshot, self._output, item)  # the model is slower than the camera
        return self._frame(animated, note, tick=True, fresh=settings.passthrough)

    def _held_frame(self, snapshot: Snapshot) -> np.ndarray | None:
        """The last model frame of the avatar being driven, if there is one."""
        if self._model_frame is None or snapshot.avatar is None or self._model_frame[0] != snapshot.avatar.key:
            return None
        return self._model_frame[1]

    def _stand_in_reason(self, snapshot: Snapshot) -> str:
        if snapshot.predictor is None:
            return "no model"
        if snapshot.avatar is None:
            return "no avatar"
        return self._unavailable or "waiting for the model"

    def _render_preview(self, item: Captured, snapshot: Snapshot) -> np.ndarray:
        settings = snapshot.settings
        landmarks = None
        if settings.show_landmarks:
            latest = self.landmarks()
            if latest is not None and self.clock() - latest.t < LANDMARKS_MAX_AGE:
                landmarks = latest.points
        return render_preview(
            item.frame, item.crop, smart=settings.smart_crop, mirror=settings.mirror_preview,
            overlay=snapshot.avatar.image if snapshot.avatar is not None else None,
            opacity=settings.overlay_opacity, landmarks=landmarks,
        )  # fmt: skip

    # -- model results --------------------------------------------------------------------------------------

    def _on_prediction(self, prediction: Prediction) -> PipelineFrame | None:
        snapshot = self.state.current
        if prediction.image is None:
            self._unavailable = prediction.reason
            self.problems.report("model", prediction.reason)
            return None
        self._unavailable = None
        if not snapshot.animating or self._item is None:
            return None
        self._model_frame = (snapshot.avatar.key, prediction.image)
        size = output_size(self._item.frame.shape, snapshot.settings.output_keep_aspect)
        self._send(snapshot, compose_output(prediction.image, size, snapshot.settings.mirror_output), self._item)
        now = self.clock()
        self.times.record("latency", now - prediction.t_capture)
        self.times.record("handoff", now - prediction.t_finished)
        return self._frame(True, "", tick=False, fresh=True)

    # -- sending ---------------------------------------------------------------------------------------------

    def _send(self, snapshot: Snapshot, result: np.ndarray, item: Captured) -> None:
        self._output = result
        self._sent_at = self.clock()
        output = snapshot.output
        if output is None:
            return
        if output.send(result, fps=item.camera_fps or None):
            self.problems.clear("vcam")
        elif output.error and output is self.state.current.output:  # not one replaced meanwhile
            self.problems.report("vcam", output.error)

    def _frame(self, animated: bool, note: str, tick: bool, fresh: bool) -> PipelineFrame:
        return PipelineFrame(self._preview, self._output, self.stats(), animated, note, tick, fresh)

    def _emit(self, frame: PipelineFrame) -> None:
        for callback in list(self.listeners):
            try:
                callback(frame)
            except Exception:
                log.exception("A frame listener failed")


def _black() -> np.ndarray:
    return np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
