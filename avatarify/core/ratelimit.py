"""Logging repeated problems without letting whoever causes them flood the log."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# Kinds not heard of for this long are forgotten, so that made-up kinds cannot grow the table without end.
_FORGET_AFTER = 60.0
_MAX_KINDS = 1024


class RateLimitedLog:
    """Logs at most one line per `interval` seconds for each kind of problem; thread-safe.

    A peer that sends a thousand bad messages a second costs one line a second per kind of mistake. The next line
    of a kind says how many of that kind were left out since the last one.
    """

    def __init__(
        self, logger: logging.Logger, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> bool:
        """Log `message % args` unless a line of `kind` was logged less than `interval` ago; True if logged."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._left_out[kind] = self._left_out.get(kind, 0) + 1
                return False
            if last is None and len(self._last) >= _MAX_KINDS:  # only a new kind needs room
                self._forget(now)
            self._last[kind] = now
            left_out = self._left_out.pop(kind, 0)
        if left_out:
            message += " (and %d more like it since the last such line)"
            args = (*args, left_out)
        self.logger.log(level, message, *args)
        return True

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """`log` at WARNING level."""
        return self.log(logging.WARNING, kind, message, *args)

    def _forget(self, now: float) -> None:
        stale = [kind for kind, last in self._last.items() if now - last > max(self.interval, _FORGET_AFTER)]
        for kind in stale or list(self._last)[: len(self._last) // 2]:
            del self._last[kind]
            self._left_out.pop(kind, None)
