"""The real-time loop: camera -> face crop -> model -> virtual camera, as four stages on their own threads.

    camera --newest frame--> capture (crop, cut once) --+--> inference --result at once--+
                                                        +--> analysis (landmarks, best pose)|
                                                        +--> output (preview, vcam) <------+

Every hand-off is bounded and drops the oldest item, so latency never piles up: the model always takes the
newest frame when it becomes free, and its result goes out the moment it is ready. The stages share one
snapshot (settings, camera, model, avatar, virtual camera) that is replaced whole.

The pipeline does not own its parts: whoever hands one in (the session) closes it; the `set_*` methods return
the part they replaced for that purpose.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from ..core.frame import AvatarPredictor
from ..core.settings import Settings
from .analysis import AnalysisStage
from .camera import FrameSource
from .capture import CaptureStage
from .frames import Captured, Landmarks, PipelineFrame, PipelineStats
from .inference import InferenceStage
from .output import OutputStage
from .problems import ProblemBoard
from .state import Avatar, LandmarkSource, SharedState, Snapshot
from .stats import StageTimes
from .vcam import VirtualCameraOutput

STOP_TIMEOUT = 3.0


class Pipeline:
    """The headless real-time avatar pipeline.

    Listeners are called on the output thread; problems go to `problems` (each once until it clears) and
    never stop the pipeline.
    """

    def __init__(
        self,
        camera: FrameSource | None = None,
        settings: Settings | None = None,
        predictor: AvatarPredictor | None = None,
        output: VirtualCameraOutput | None = None,
        landmarks: LandmarkSource | None = None,
        avatar: Avatar | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = SharedState(
            Snapshot(settings or Settings(), camera, predictor, output, landmarks, avatar)
        )
        self.problems = ProblemBoard()
        self.times = StageTimes()
        self._output = OutputStage(self.state, self.problems, self.times, self.stats, self._latest_landmarks, clock)
        self._inference = InferenceStage(self.state, self.problems, self.times, self._output.offer, clock)
        self._analysis = AnalysisStage(self.state, self.problems, clock)
        self._capture = CaptureStage(self.state, self.problems, self.times, self._route, clock)
        self._stages = (self._capture, self._inference, self._analysis, self._output)
        self._running = False

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the four stages."""
        for stage in self._stages:
            stage.start()
        self._running = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Stop the stages within `timeout` seconds in all; False if one is still busy (it ends on its own)."""
        for stage in self._stages:
            stage.request_stop()
        deadline = time.monotonic() + timeout
        stopped = [stage.join(max(0.0, deadline - time.monotonic())) for stage in self._stages]
        self._running = False
        return all(stopped)

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the stages share ----------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self.state.current

    @property
    def settings(self) -> Settings:
        return self.state.current.settings

    def apply(self, settings: Settings) -> None:
        """Use these settings from the next frame on."""
        self.state.replace(settings=settings)

    def set_avatar(self, avatar: Avatar | None) -> None:
        """Drive this avatar (None: none)."""
        self.state.replace(avatar=avatar)

    def set_camera(self, camera: FrameSource | None) -> FrameSource | None:
        """Read from another camera; returns the one it replaced."""
        old, _ = self.state.replace(camera=camera)
        self.times.forget("camera")
        self.problems.clear("camera")
        return old.camera

    def set_predictor(self, predictor: AvatarPredictor | None) -> AvatarPredictor | None:
        """Animate with another predictor (None: no model); returns the one it replaced."""
        old, _ = self.state.replace(predictor=predictor)
        self.problems.clear("model")
        return old.predictor

    def set_output(self, output: VirtualCameraOutput | None) -> VirtualCameraOutput | None:
        """Send to another virtual camera (None: none); returns the one it replaced."""
        old, _ = self.state.replace(output=output)
        self.problems.clear("vcam")
        return old.output

    def set_landmarks(self, landmarks: LandmarkSource | None) -> LandmarkSource | None:
        """Find landmarks with another detector; returns the one it replaced."""
        old, _ = self.state.replace(landmarks=landmarks)
        self.problems.clear("landmarks")
        self.problems.clear("analysis")
        return old.landmarks

    def calibrate(self) -> None:
        """Take the current pose as the neutral one (and start the best-frame search over)."""
        predictor = self.state.current.predictor
        self.state.bump("pose_epoch")
        if predictor is not None:
            predictor.calibrate()

    def reset_crop(self) -> None:
        """Start the face-following crop over (the zoom and offset are settings)."""
        self.state.bump("crop_epoch")

    # -- what comes out ---------------------------------------------------------------------------------------

    def add_listener(self, callback: Callable[[PipelineFrame], None]) -> None:
        """Call `callback` (on the output thread) whenever the preview or the output changes."""
        self._output.listeners.append(callback)

    @property
    def landmarks(self) -> Landmarks | None:
        """The newest landmarks found in a camera frame (camera pixels), or None."""
        return self._latest_landmarks()

    def stats(self) -> PipelineStats:
        """Frame rates and median stage timings over the last frames."""
        snapshot, times = self.state.current, self.times
        predictor, output = snapshot.predictor, snapshot.output
        return PipelineStats(
            camera_fps=times.rate("camera"),
            model_fps=times.rate("model"),
            capture_ms=times.median("capture"),
            crop_ms=times.median("crop"),
            model_ms=times.median("model"),
            output_ms=times.median("output"),
            latency_ms=times.median("latency"),
            wait_ms=times.median("wait"),
            handoff_ms=times.median("handoff"),
            best_frame_score=self._analysis.best_score,
            device=predictor.device_name if predictor is not None else "none",
            vcam_state=output.state if output is not None else "off",
        )

    def _latest_landmarks(self) -> Landmarks | None:
        return self._analysis.latest

    def _route(self, item: Captured) -> None:
        snapshot = self.state.current
        if snapshot.animating:
            self._inference.offer(item)
        if snapshot.wants_landmarks and snapshot.landmarks is not None:
            self._analysis.offer(item)
        self._output.offer(item)
