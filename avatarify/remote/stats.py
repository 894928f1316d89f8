"""How a remote predictor is doing: medians of its recent frames' timings and sizes, and running counts."""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

STATS_WINDOW = 100


@dataclass(frozen=True)
class RemoteStats:
    """A snapshot of a remote predictor's figures; times and sizes are medians over the recent frames.

    `overhead_ms` is what going remote adds to each frame: its round trip less the worker's model time.
    `unavailable_frames` counts frames the worker could not animate (unreachable, refused, no result yet).
    """

    state: str
    round_trip_ms: float | None
    worker_ms: float | None
    overhead_ms: float | None
    bytes_per_frame: float | None
    frames: int
    dropped_frames: int
    unavailable_frames: int
    avatar_uploads: int


def _window() -> deque[float]:
    return deque(maxlen=STATS_WINDOW)


def _median(values: deque[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class StatsWindow:
    """The figures as they are collected (by the predictor, under its lock)."""

    round_trips: deque[float] = field(default_factory=_window)
    worker_times: deque[float] = field(default_factory=_window)
    overheads: deque[float] = field(default_factory=_window)
    frame_bytes: deque[float] = field(default_factory=_window)
    frames: int = 0
    dropped: int = 0
    unavailable: int = 0
    uploads: int = 0

    def add_frame(self, round_trip_ms: float, worker_ms: float, size: int) -> None:
        """One animated frame: its round trip, the worker's model time and the bytes it cost both ways."""
        self.frames += 1
        self.round_trips.append(round_trip_ms)
        self.worker_times.append(worker_ms)
        self.overheads.append(round_trip_ms - worker_ms)
        self.frame_bytes.append(size)

    def summary(self, state: str) -> RemoteStats:
        return RemoteStats(
            state=state,
            round_trip_ms=_median(self.round_trips),
            worker_ms=_median(self.worker_times),
            overhead_ms=_median(self.overheads),
            bytes_per_frame=_median(self.frame_bytes),
            frames=self.frames,
            dropped_frames=self.dropped,
            unavailable_frames=self.unavailable,
            avatar_uploads=self.uploads,
        )
