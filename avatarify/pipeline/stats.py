"""Timing the pipeline: per-stage durations and event rates over a sliding window, safe across threads."""
from __future__ import annotations

import statistics
import threading
from collections import deque

STATS_WINDOW = 30
TIMINGS = ("capture", "crop", "model", "output", "latency", "wait", "handoff")


def rate(times: list[float]) -> float:
    """Events per second from their times (0 with fewer than two)."""
    if len(times) < 2 or times[-1] <= times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


class StageTimes:
    """The last `window` durations of each stage (milliseconds) and the times of camera and model frames."""

    def __init__(self, window: int = STATS_WINDOW) -> None:
        self._lock = threading.Lock()
        self._timings = {name: deque(maxlen=window) for name in TIMINGS}
        self._events = {name: deque(maxlen=window) for name in ("camera", "model")}

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            self._timings[name].append(seconds * 1000.0)

    def event(self, name: str, t: float) -> None:
        """A camera frame arrived or a model result came at time `t`."""
        with self._lock:
            self._events[name].append(t)

    def forget(self, name: str) -> None:
        """Start the rate of `name` over (a new camera has its own rate)."""
        with self._lock:
            self._events[name].clear()

    def median(self, name: str) -> float:
        with self._lock:
            values = list(self._timings[name])
        return statistics.median(values) if values else 0.0

    def rate(self, name: str) -> float:
        with self._lock:
            times = list(self._events[name])
        return rate(times)
