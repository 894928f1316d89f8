"""A pipeline stage: one thread running one loop over one bounded in-queue that drops the oldest item."""
from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar

from .handoff import DropOldest

log = logging.getLogger(__name__)

T = TypeVar("T")
IDLE_TIMEOUT = 0.2


class Stage(Generic[T]):
    """Runs `handle(item)` for each item put with `offer`, and `idle()` when none came for `idle_timeout` s.

    An exception from `handle` or `idle` is passed to `failed` and the loop goes on: one bad frame never ends
    a stage.
    """

    name = "stage"

    def __init__(self, queue_size: int = 1, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.queue: DropOldest[T] = DropOldest(queue_size)
        self.idle_timeout = idle_timeout
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def offer(self, item: T) -> None:
        self.queue.put(item)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=f"pipeline {self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        self.queue.wake()  # a stage waiting for work stops now, not after its idle timeout

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still running after `timeout` seconds."""
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self.next_item()
                if item is None:
                    self.idle()
                else:
                    self.handle(item)
            except Exception as exc:  # a stage survives every failure; the subclass says how to report it
                self.failed(exc)

    def next_item(self) -> T | None:
        """The next item to handle, or None after `idle_timeout` without one."""
        return self.queue.get(timeout=self.idle_timeout)

    def handle(self, item: T) -> None:
        raise NotImplementedError

    def idle(self) -> None:
        """Called when no item came for a while."""

    def failed(self, exc: Exception) -> None:
        log.exception("The %s stage failed", self.name)
