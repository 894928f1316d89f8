"""Bounded hand-offs between pipeline threads that drop the oldest item instead of blocking the producer."""
from __future__ import annotations

import collections
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldest(Generic[T]):
    """A bounded queue whose `put` never blocks: when full, the oldest item is discarded.

    Real-time stages want the newest data; a slow consumer must not make the producer
    wait or let latency pile up in a backlog.
    """

    def __init__(self, maxsize: int = 1) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._items: collections.deque[T] = collections.deque(maxlen=maxsize)
        self._ready = threading.Condition()
        self._woken = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._ready:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(item)
            self._ready.notify()

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item still held, waiting up to `timeout` seconds; None when none came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._items:
                if self._woken:
                    self._woken = False
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)
            return self._items.popleft()

    def wake(self) -> None:
        """Make the `get` waiting now (or else the next one) return None at once, as a stopping stage needs."""
        with self._ready:
            self._woken = True
            self._ready.notify_all()

    def clear(self) -> None:
        with self._ready:
            self._items.clear()

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)
