"""The analysis stage: face landmarks for the overlay and the search for the best neutral frame."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from ..core.frame import FRAME_SIZE
from .frames import Captured, Landmarks
from .pose import pose_score
from .problems import ProblemBoard, one_line
from .stage import Stage
from .state import LandmarkSource, SharedState, Snapshot

log = logging.getLogger(__name__)


class AnalysisStage(Stage[Captured]):
    """Finds landmarks in the newest frame when the overlay or *find best frame* wants them.

    With *find best frame* on, a frame whose pose matches the avatar's better than every earlier one becomes
    the neutral pose; the search starts over with another avatar, model or calibration.
    """

    name = "analysis"

    def __init__(self, state: SharedState, problems: ProblemBoard, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(queue_size=1)
        self.state, self.problems, self.clock = state, problems, clock
        self.latest: Landmarks | None = None
        self._search: tuple[object, object, int] | None = None
        self._avatar_points: np.ndarray | None = None
        self._best: float | None = None

    @property
    def best_score(self) -> float | None:
        """The best pose score found since the search started (None while off or before the first)."""
        return self._best if self.state.current.settings.find_best_frame else None

    def handle(self, item: Captured) -> None:
        snapshot = self.state.current
        if not snapshot.settings.find_best_frame:
            self._search, self._best = None, None  # switched off: the next search starts afresh
        detector = snapshot.landmarks
        if detector is None or not snapshot.wants_landmarks:
            return
        if detector.unavailable:
            self.problems.report("landmarks", f"Face landmarks {detector.state}")
            return
        points = detector.landmarks(item.face)
        self.problems.clear("analysis")
        if points is None:
            return
        scale = item.crop.side / FRAME_SIZE
        origin = np.array([item.crop.cx - item.crop.side / 2, item.crop.cy - item.crop.side / 2])
        self.latest = Landmarks(points * scale + origin, self.clock())
        if snapshot.settings.find_best_frame:
            self._search_best(snapshot, detector, item.face, points)

    def _search_best(self, snapshot: Snapshot, detector: LandmarkSource, face: np.ndarray, points: np.ndarray) -> None:
        if snapshot.avatar is None or snapshot.predictor is None:
            return
        search = (snapshot.avatar, snapshot.predictor, snapshot.pose_epoch)
        if search != self._search:
            self._search, self._avatar_points, self._best = search, None, None
        if self._avatar_points is None:
            self._avatar_points = detector.landmarks(snapshot.avatar.image)
            if self._avatar_points is None:
                self.problems.report("landmarks", "Find best frame: no face found in the avatar picture.")
                return
        score = pose_score(self._avatar_points, points)
        if self._best is not None and score <= self._best:
            return
        snapshot.predictor.set_neutral(face)
        self._best = score  # published after the neutral pose is in place, so a reader can rely on it
        log.debug("New best neutral frame, score %.3f", score)

    def failed(self, exc: Exception) -> None:
        log.debug("Analysis failed", exc_info=exc)
        self.problems.report("analysis", f"Face analysis failed on a frame: {one_line(exc)}")
