"""The inference stage: the model animates the newest captured frame as soon as it is free."""
from __future__ import annotations

import time
from collections.abc import Callable

from ..core.errors import EngineUnavailable
from ..core.frame import AvatarPredictor
from .frames import Captured, Prediction
from .problems import ProblemBoard, one_line
from .stage import Stage
from .state import SharedState
from .stats import StageTimes


class InferenceStage(Stage[Captured]):
    """Keeps the predictor's avatar and motion options in step with the snapshot, then predicts.

    Its in-queue holds one frame, the newest: a model slower than the camera skips frames instead of falling
    behind. Every result (or the reason there is none) goes to `deliver` at once.
    """

    name = "inference"

    def __init__(
        self,
        state: SharedState,
        problems: ProblemBoard,
        times: StageTimes,
        deliver: Callable[[Prediction], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(queue_size=1)
        self.state, self.problems, self.times, self.deliver, self.clock = state, problems, times, deliver, clock
        self._applied: tuple[AvatarPredictor, str] | None = None

    def handle(self, item: Captured) -> None:
        snapshot = self.state.current
        predictor, avatar = snapshot.predictor, snapshot.avatar
        if not snapshot.animating:
            return
        started = self.clock()
        try:
            if self._applied != (predictor, avatar.key):
                predictor.set_avatar(avatar.image)
                self._applied = (predictor, avatar.key)
            if predictor.motion != snapshot.motion:
                predictor.motion = snapshot.motion
            image = predictor.predict(item.face)
        except EngineUnavailable as exc:
            self.deliver(Prediction(None, item.t, started, self.clock(), reason=str(exc)))
            return
        except Exception as exc:  # a model or remote-worker failure must not end the loop
            if self.state.current.predictor is not predictor:
                return  # replaced (and closed) while it worked on this frame
            self._applied = None  # set the avatar again with the next frame
            self.problems.report("model", f"The model failed on a frame: {one_line(exc)}")
            return
        finished = self.clock()
        self.problems.clear("model")
        self.times.record("wait", started - item.t)
        self.times.record("model", finished - started)
        self.times.event("model", finished)
        if self.state.current.predictor is predictor:
            self.deliver(Prediction(image, item.t, started, finished))
