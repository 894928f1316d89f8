"""What the worker's model thread has to do, and who holds a place there: kept per client, so that one client, however
busy or hostile, never pushes out another's requests or takes every place."""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Container
from dataclasses import dataclass

from .protocol import Message

# Requests one client may have waiting for the model; a client in good standing has two frames in flight and at
# times an avatar and a neutral pose.
CLIENT_QUOTA = 8


def _plain_frame(message: Message) -> bool:
    """A frame to animate that does not also set the neutral pose: a newer frame makes it worthless."""
    return message.type == "predict" and not message.header["calibrate"]


class RequestInbox:
    """Requests waiting for the model thread, per client, at most `quota` each; thread-safe.

    A new frame replaces the client's waiting frame (which the caller answers `dropped`), so only each client's
    newest frame is animated; calibration frames are kept, since they set the neutral pose. `take` hands the model
    thread every client's requests at once, interleaved client by client.
    """

    def __init__(self, quota: int = CLIENT_QUOTA) -> None:
        self.quota = quota
        self._cond = threading.Condition()
        self._waiting: dict[bytes, deque[Message]] = {}
        self._forgotten: list[bytes] = []
        self._closed = False

    def put(self, identity: bytes, message: Message) -> tuple[bool, Message | None]:
        """Queue `message`: (False, None) when the client's quota is used up; else (True, the frame it replaced)."""
        with self._cond:
            waiting = self._waiting.setdefault(identity, deque())
            replaced = None
            if _plain_frame(message):
                replaced = next((old for old in waiting if _plain_frame(old)), None)
                if replaced is not None:
                    waiting.remove(replaced)
            if len(waiting) >= self.quota:
                return False, None
            waiting.append(message)
            self._cond.notify()
            return True, replaced

    def forget(self, identity: bytes) -> int:
        """Drop a client's waiting requests (it is gone) and have the model thread drop its state; how many."""
        with self._cond:
            dropped = len(self._waiting.pop(identity, ()))
            self._forgotten.append(identity)
            self._cond.notify()
            return dropped

    def close(self) -> None:
        """Wake the model thread for good: `take` returns closed from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> tuple[list[tuple[bytes, Message]], list[bytes], bool]:
        """Wait for work: (requests interleaved client by client, clients to forget, whether closed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._forgotten or self._closed, timeout)
            queues = list(self._waiting.items())
            self._waiting.clear()
            forgotten, self._forgotten = self._forgotten, []
            batch = []
            while queues:
                batch += [(identity, waiting.popleft()) for identity, waiting in queues]
                queues = [(identity, waiting) for identity, waiting in queues if waiting]
            return batch, forgotten, self._closed

    def take_ready(self, busy: Container[bytes]) -> tuple[list[tuple[bytes, Message, bool]], list[bytes]]:
        """Without waiting, for a backend that serves each client one request at a time: the oldest waiting request
        of every client not in `busy`, with whether a newer frame waits behind it (a calibration frame made stale),
        and the clients to forget."""
        with self._cond:
            taken = []
            for identity, waiting in list(self._waiting.items()):
                if identity in busy or not waiting:
                    continue
                message = waiting.popleft()
                stale = message.type == "predict" and any(later.type == "predict" for later in waiting)
                taken.append((identity, message, stale))
                if not waiting:
                    del self._waiting[identity]
            forgotten, self._forgotten = self._forgotten, []
            return taken, forgotten

    def waiting(self) -> int:
        """How many requests wait, all clients together."""
        with self._cond:
            return sum(len(waiting) for waiting in self._waiting.values())


@dataclass
class _Place:
    peer: str
    last_seen: float


class Admission:
    """Which clients hold one of the worker's places: at most `max_clients`, at most `per_peer` for one key (with
    keys) or one address (without).

    A client takes a place with its first request for the model (an avatar, a neutral pose or a frame); greetings
    and heartbeats from a client without a place are answered but hold nothing, so throwaway identities cost
    nothing. An identity that holds a place is served only from the peer that took it.
    """

    def __init__(self, max_clients: int, per_peer: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_clients = max_clients
        self.per_peer = per_peer
        self._clock = clock
        self._places: dict[bytes, _Place] = {}

    def __contains__(self, identity: bytes) -> bool:
        return identity in self._places

    def __len__(self) -> int:
        return len(self._places)

    def identities(self) -> list[bytes]:
        return list(self._places)

    def check(self, identity: bytes, peer: str, takes_place: bool) -> tuple[str, str] | None:
        """None when a message from `identity` at `peer` may be served (taking a place if `takes_place`), else the
        error code and reason: "busy" when there is no place for it, "rejected" when the identity is another peer's."""
        place = self._places.get(identity)
        if place is not None:
            if place.peer != peer:
                return "rejected", "this client identity is in use by another peer"
            place.last_seen = self._clock()
            return None
        if len(self._places) >= self.max_clients:
            return "busy", f"the worker is full ({self.max_clients} clients)"
        if sum(other.peer == peer for other in self._places.values()) >= self.per_peer:
            return "busy", f"the worker already serves {self.per_peer} clients for this key or address"
        if takes_place:
            self._places[identity] = _Place(peer, self._clock())
        return None

    def remove(self, identity: bytes) -> bool:
        """Free the place of a client that went away; False if it held none."""
        return self._places.pop(identity, None) is not None

    def silent_since(self, deadline: float) -> list[bytes]:
        """The clients not heard from since `deadline` (a `clock` time)."""
        return [identity for identity, place in self._places.items() if place.last_seen < deadline]
