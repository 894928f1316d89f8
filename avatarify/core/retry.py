"""The one reconnect policy: after a failure, try again once `interval` seconds have passed.

Used by camera sources reopening a lost device, the session reopening a camera that was not there at start,
and the virtual camera reopening its device; the clock is injectable so tests need not sleep.
"""
from __future__ import annotations

import time
from collections.abc import Callable


class Retry:
    """When the next attempt is due: at once at first and after a success, `interval` after a failure."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._due = 0.0
        self.failures = 0

    def due(self) -> bool:
        """Whether an attempt may be made now."""
        return self.clock() >= self._due

    @property
    def wait_seconds(self) -> float:
        """Seconds until the next attempt is due (0 when it is due now)."""
        return max(0.0, self._due - self.clock())

    def failed(self) -> None:
        """An attempt failed: the next one is due `interval` from now."""
        self.failures += 1
        self._due = self.clock() + self.interval

    def succeeded(self) -> None:
        """An attempt worked: a later failure may be retried at once."""
        self.failures = 0
        self._due = 0.0
