"""A client's frames sent and not answered yet, and the newest result: results never go back in time."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Request:
    """One frame sent: when, its message parts (to send again), the avatar it was for, whether it was resent."""

    sent_at: float
    parts: list[bytes]
    avatar: str
    replayed: bool = False


class Requests:
    """Pending requests by id, and the newest result with its id (held by the client under its lock)."""

    def __init__(self) -> None:
        self._pending: dict[int, Request] = {}
        self.newest: np.ndarray | None = None
        self.newest_id = 0

    def __len__(self) -> int:
        return len(self._pending)

    def oldest(self) -> int:
        return min(self._pending)

    def add(self, request_id: int, request: Request) -> None:
        self._pending[request_id] = request

    def get(self, request_id: int) -> Request | None:
        return self._pending.get(request_id)

    def drop(self, request_id: int) -> bool:
        """Forget a request that will get no result; whether it was pending."""
        return self._pending.pop(request_id, None) is not None

    def waiting_for(self, request_id: int) -> bool:
        """Whether `request_id` is still pending and no newer result has come."""
        return self.newest_id < request_id and request_id in self._pending

    def expire(self, now: float, age: float) -> bool:
        """Forget requests older than `age` seconds (their answers were lost); whether any were."""
        expired = [i for i, request in self._pending.items() if now - request.sent_at > age]
        for request_id in expired:
            del self._pending[request_id]
        return bool(expired)

    def is_fresh(self, request_id: int) -> bool:
        """Whether a result for `request_id` is wanted: pending, and newer than the newest result so far."""
        return request_id in self._pending and request_id > self.newest_id

    def accept(self, request_id: int, frame: np.ndarray) -> Request:
        """Take `frame` as the newest result; the request and every older one are done."""
        request = self._pending.pop(request_id)
        for older in [i for i in self._pending if i < request_id]:
            del self._pending[older]
        self.newest, self.newest_id = frame, request_id
        return request

    def clear(self) -> None:
        """The connection was reset: nothing pending will be answered, and no result is current."""
        self._pending.clear()
        self.newest = None
