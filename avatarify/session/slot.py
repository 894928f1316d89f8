"""One component a session owns: the live object, its status, and loads that carry a generation token.

A load started later always wins: when an older load finishes last, its object is closed instead of
installed. Nothing a slot opens is leaked, and every close is bounded in time.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..core.status import OFF, ComponentStatus

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 3.0


def close_within(obj: Any, timeout: float = CLOSE_TIMEOUT) -> bool:
    """Call `obj.close()` on a helper thread and wait at most `timeout` s; False if it did not return in time."""
    close = getattr(obj, "close", None)
    if obj is None or not callable(close):
        return True

    def run() -> None:
        try:
            close()
        except Exception:  # a failing close must not stop the others
            log.exception("Closing %s failed", type(obj).__name__)

    thread = threading.Thread(target=run, name=f"close {type(obj).__name__}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("Closing %s took longer than %.0f s; leaving it to finish.", type(obj).__name__, timeout)
        return False
    return True


class Slot:
    """Holds one component: `install(obj)` puts it where it is used and returns what it replaced (closed here)."""

    def __init__(
        self,
        name: str,
        install: Callable[[Any], Any],
        on_status: Callable[[str, ComponentStatus], None],
    ) -> None:
        self.name = name
        self.status = OFF
        self.current: Any = None
        self._install = install
        self._on_status = on_status
        self._lock = threading.Lock()
        self._generation = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def begin(self, status: ComponentStatus) -> int:
        """Start a new load (it supersedes every earlier one); returns its token."""
        with self._lock:
            self._generation += 1
            token = self._generation
        self._set_status(status)
        return token

    def is_current(self, token: int) -> bool:
        return token == self._generation and not self._closed

    def finish(self, token: int, obj: Any, status: ComponentStatus) -> bool:
        """Install what load `token` made, unless a newer load or `close` came since: then it is closed."""
        with self._lock:
            stale = not self.is_current(token)
            if not stale:
                self.current = obj
                replaced = self._install(obj)
        if stale:
            log.info("Discarded a %s that finished after a newer one was asked for", self.name)
            close_within(obj)
            return False
        if replaced is not obj:
            close_within(replaced)
        self._set_status(status)
        return True

    def fail(self, token: int, status: ComponentStatus) -> bool:
        """Load `token` failed: show why, unless a newer load came since."""
        if not self.is_current(token):
            return False
        self._set_status(status)
        return True

    def run(self, token: int, work: Callable[[int], None]) -> None:
        """Run `work(token)` on a background thread that `close` waits for."""
        thread = threading.Thread(target=work, args=(token,), name=f"load {self.name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def clear(self, status: ComponentStatus = OFF) -> None:
        """Remove the component (and cancel loads in flight)."""
        self.begin(status)
        with self._lock:
            self.current = None
            old = self._install(None)
        close_within(old)

    def refresh(self, status: ComponentStatus) -> None:
        self._set_status(status)

    def close(self, deadline: float) -> bool:
        """Cancel loads, remove and close the component, and wait for load threads until `deadline`."""
        with self._lock:
            self._closed = True
            self._generation += 1
            self.current = None
            old = self._install(None)
            threads = list(self._threads)
        done = close_within(old, max(0.1, deadline - time.monotonic()))
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return done and not any(thread.is_alive() for thread in threads)

    def _set_status(self, status: ComponentStatus) -> None:
        if status != self.status:
            self.status = status
            self._on_status(self.name, status)
