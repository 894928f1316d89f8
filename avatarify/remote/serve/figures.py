"""What the replicas' answers tell the front end: per replica and overall, for the status report and the log."""
from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Recent answers the medians and the frame rate are taken over.
WINDOW = 300
# A replica not heard from for this long has gone (or serves other front ends only): left out of the report.
REPLICA_FORGOTTEN_AFTER = 60.0
STAGES = ("decode", "keypoints", "generator", "encode")


def _window() -> deque[float]:
    return deque(maxlen=WINDOW)


def _median(values: deque[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


@dataclass
class _Replica:
    pid: int
    last_seen: float
    frames: int = 0
    queue: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    generator_ms: deque[float] = field(default_factory=_window)


class ServingFigures:
    """Figures gathered from the answers of the replicas: each answer names its replica and carries the size of its
    batch, the ms of each stage and how many requests the replica held. Batch sizes count frames by the size of the
    batch they ran in; sessions count for the replica that served their last frame."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._replicas: dict[str, _Replica] = {}
        self._sessions: dict[bytes, str] = {}
        self._stages: dict[str, deque[float]] = {name: _window() for name in (*STAGES, "round_trip")}
        self._batch_sizes: Counter = Counter()
        self._times: deque[float] = _window()
        self.frames = 0
        self._logged_frames = 0

    def add(self, session: bytes, figures: dict[str, Any], round_trip_ms: float) -> None:
        """One animated frame of `session`, with the figures its replica sent."""
        now = self._clock()
        name = str(figures["replica"])
        replica = self._replicas.get(name)
        if replica is None:
            replica = self._replicas[name] = _Replica(int(figures["pid"]), now)
        replica.last_seen = now
        replica.frames += 1
        replica.queue = int(figures["queue"])
        batch = int(figures["batch"])
        replica.batch_sizes[batch] += 1
        self._batch_sizes[batch] += 1
        stages = figures.get("stage_ms") or {}
        if "generator" in stages:
            replica.generator_ms.append(float(stages["generator"]))
        for stage in STAGES:
            if stage in stages:
                self._stages[stage].append(float(stages[stage]))
        self._stages["round_trip"].append(round_trip_ms)
        self._sessions[session] = name
        self._times.append(now)
        self.frames += 1

    def forget(self, session: bytes) -> None:
        self._sessions.pop(session, None)

    def fps(self) -> float:
        """Frames per second over the recent answers."""
        if len(self._times) < 2:
            return 0.0
        span = self._clock() - self._times[0]
        return round(len(self._times) / span, 1) if span > 0 else 0.0

    def report(self, known: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The figures, per replica and overall. `known`: the replicas Serve lists (id, state, pid, node), shown
        whether or not they served this front end; without it, the replicas heard from lately."""
        now = self._clock()
        for name in [name for name, replica in self._replicas.items() if now - replica.last_seen > REPLICA_FORGOTTEN_AFTER]:
            del self._replicas[name]
        sessions = Counter(self._sessions.values())
        listed = {str(replica.get("id")): replica for replica in known or []}
        replicas = {}
        for name in listed or self._replicas:
            seen = self._replicas.get(name)
            entry = listed.get(name) or {"state": "RUNNING", "pid": seen.pid if seen else None}
            replicas[name] = {
                "state": entry.get("state"), "pid": entry.get("pid"), "node": entry.get("node"),
                "sessions": sessions.get(name, 0), "frames": seen.frames if seen else 0, "queue": seen.queue if seen else 0,
                "batch_sizes": _histogram(seen.batch_sizes) if seen else {},
                "generator_ms": _median(seen.generator_ms) if seen else None,
            }  # fmt: skip
        return {
            "replica_states": dict(Counter(str(replica["state"]) for replica in replicas.values())) if listed else {},
            "fps": self.fps(),
            "frames": self.frames,
            "batch_sizes": _histogram(self._batch_sizes),
            "stage_ms": {name: _median(values) for name, values in self._stages.items() if values},
            "replicas": replicas,
        }

    def summary(self) -> str | None:
        """One log line about the frames since the last line; None when there were none."""
        new, self._logged_frames = self.frames - self._logged_frames, self.frames
        if not new:
            return None
        report = self.report()
        stages = ", ".join(f"{name} {value}" for name, value in report["stage_ms"].items())
        per_replica = ", ".join(
            f"{name} {figures['sessions']} sessions queue {figures['queue']}" for name, figures in report["replicas"].items()
        )
        sizes = " ".join(f"{size}:{count}" for size, count in report["batch_sizes"].items())
        return f"Ray Serve: {report['fps']} frames/s; frames by batch size {sizes}; median ms {stages}; replicas: {per_replica}"


def _histogram(counts: Counter) -> dict[str, int]:
    return {str(size): counts[size] for size in sorted(counts)}
