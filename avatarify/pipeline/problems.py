"""The pipeline's current problems by topic: each reported once when it starts, cleared when it is over."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

# Topics: "camera", "capture", "model", "analysis", "landmarks", "output", "vcam".
Listener = Callable[[str, "str | None"], None]


def one_line(exc: BaseException) -> str:
    """An exception as one line (OpenCV's messages span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class ProblemBoard:
    """Problems by topic. A repeated report of the same problem is silent; listeners hear starts and ends."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []

    def add_listener(self, callback: Listener) -> None:
        """Call `callback(topic, message)` when a problem starts or changes, `callback(topic, None)` when it ends."""
        self._listeners.append(callback)

    def report(self, topic: str, message: str) -> None:
        with self._lock:
            if self._problems.get(topic) == message:
                return
            self._problems[topic] = message
        log.warning("%s", message)
        self._notify(topic, message)

    def clear(self, topic: str, recovered: str | None = None) -> None:
        with self._lock:
            if self._problems.pop(topic, None) is None:
                return
        if recovered:
            log.info("%s", recovered)
        self._notify(topic, None)

    def get(self, topic: str) -> str | None:
        with self._lock:
            return self._problems.get(topic)

    def current(self) -> dict[str, str]:
        """The problems not cleared yet, by topic."""
        with self._lock:
            return dict(self._problems)

    def _notify(self, topic: str, message: str | None) -> None:
        for callback in list(self._listeners):
            try:
                callback(topic, message)
            except Exception:
                log.exception("A problem listener failed")
