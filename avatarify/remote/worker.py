"""The remote worker's front end: serves the model to clients over a ZeroMQ ROUTER socket.

The socket thread owns the socket: it validates every message, answers heartbeats and status queries at
once (so a long model call never looks like a dead worker), files requests per client and forgets clients
that went away (silent, or disconnected as the socket's monitor reports). Clients name themselves (a
ZeroMQ routing id not starting with a zero byte), so that a reconnecting client keeps its place. The model
side is a backend (`backend.ModelBackend`): the model on a thread of this process (`LocalBackend`), or a
Ray Serve deployment (`serve.backend.RayBackend`); it takes the filed requests and answers them.

Nothing a peer sends stops either thread: a message that fails validation, or whose handling fails, is dropped
and logged, at most one line a second for each kind of mistake.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import recv_monitor_message

from ..core.errors import AvatarifyError
from ..core.ratelimit import RateLimitedLog
from . import CLIENT_TIMEOUT, DEFAULT_BIND, MAX_CLIENTS, MAX_CLIENTS_PER_PEER
from .backend import FrontEnd, ModelBackend, WorkerCounters
from .inbox import CLIENT_QUOTA, Admission, RequestInbox
from .keys import ServerKeys
from .protocol import MAX_PART_BYTES, Message, ProtocolError, decode_message, encode_message

log = logging.getLogger(__name__)

# Messages read from the socket before the loop looks at results and timeouts again.
RECEIVE_BATCH = 256
POLL_MS = 250
# After the monitor reports a lost connection, the clients are probed this much later (ZeroMQ needs a moment to
# retire the connection), and once more in case it needed longer.
PROBE_DELAYS = (0.05, 0.5)
# A client found disconnected keeps its place this long, to reconnect (a reconnect takes 0.1 to 1 s).
RECONNECT_GRACE = 2.0
# Identities refused while full, remembered so that each is logged once rather than at every greeting.
REFUSALS_REMEMBERED = 1024
# While there is work, a line of figures this often.
STATUS_LOG_INTERVAL = 5.0
# Requests that need a place: everything but greetings and heartbeats.
_REQUESTS = ("avatar", "neutral", "predict")


class WorkerBindError(AvatarifyError):
    """The worker may not listen on the requested address as configured."""


def is_local_endpoint(endpoint: str) -> bool:
    """Whether only this machine can reach `endpoint` (a loopback TCP address, ipc:// or inproc://)."""
    parts = urlsplit(endpoint)
    if parts.scheme in ("ipc", "inproc"):
        return True
    if parts.scheme != "tcp":
        return False
    host = parts.netloc.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: possibly reachable from elsewhere


def check_bind(endpoint: str, keys: ServerKeys | None) -> None:
    """Refuse to serve beyond this machine without authentication and encryption."""
    if keys is None and not is_local_endpoint(endpoint):
        raise WorkerBindError(
            f"Refusing to listen on {endpoint} without keys: anyone who can reach it could use your GPU and see "
            "your frames. Create keys with `avatarify worker keys` and pass --keys, or bind to "
            "tcp://127.0.0.1:PORT and tunnel over SSH."
        )


class Worker:
    """Serves the model of `backend` to any number of clients over ZeroMQ (each with its own avatar and neutral
    pose), and answers `status` queries with figures from both."""

    def __init__(
        self,
        backend: ModelBackend,
        bind: str = DEFAULT_BIND,
        keys: ServerKeys | None = None,
        client_timeout: float = CLIENT_TIMEOUT,
        max_clients: int = MAX_CLIENTS,
        max_clients_per_peer: int = MAX_CLIENTS_PER_PEER,
    ) -> None:
        check_bind(bind, keys)
        self.backend = backend
        self.bind = bind
        self.keys = keys
        self.client_timeout = client_timeout
        self.counters = WorkerCounters()
        self._context = zmq.Context.instance()
        self._inbox = RequestInbox(CLIENT_QUOTA)
        self._admission = Admission(max_clients, max_clients_per_peer)
        # Clients turned away while full, and when each last asked: each is logged once, not at every hello.
        self._refused: dict[bytes, float] = {}
        self._probes: list[float] = []
        # Clients whose connection is gone, and since when: forgotten unless they come back within the grace.
        self._unreachable: dict[bytes, float] = {}
        self._bad = RateLimitedLog(log)
        self._router: zmq.Socket | None = None
        self._started = time.monotonic()
        self._next_status_log = self._started + STATUS_LOG_INTERVAL
        self.endpoint: str | None = None

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set (or KeyboardInterrupt); clients may come and go meanwhile."""
        stop = stop or threading.Event()
        auth = None
        router = self._router = self._context.socket(zmq.ROUTER)
        router.linger = 0
        router.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
        # A client that reconnects keeps its identity (and place): the new connection replaces the old one.
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        # Sending to a client that has gone fails (rather than vanishing silently): that frees its place.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        monitor = router.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        front = FrontEnd(self._context, self._inbox, self.counters, self._reject,
                         lambda identity, parts: self._send(router, identity, parts))  # fmt: skip
        try:
            if self.keys is not None:
                auth = ThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.auth"))
                auth.start()
                auth.configure_curve(domain="*", location=str(self.keys.authorized_dir))
                self.keys.apply(router)
            self._bind(router)
            self._loop(stop, router, monitor, self.backend.open(front))
        finally:
            self._inbox.close()
            self.backend.close()
            self._log_summary()
            router.disable_monitor()
            for socket in (monitor, router):
                socket.close(linger=0)
            if auth is not None:
                auth.stop()

    def status(self) -> dict[str, Any]:
        """The front end's and the backend's figures, as `avatarify worker status` shows them."""
        return {
            "endpoint": self.endpoint,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "clients": len(self._admission),
            "max_clients": self._admission.max_clients,
            "waiting": self._inbox.waiting(),
            "problem": self.backend.problem,
            "counters": vars(self.counters).copy(),
            "backend": self.backend.status(),
        }

    def _bind(self, router: zmq.Socket) -> None:
        try:
            router.bind(self.bind)
        except zmq.ZMQError as exc:
            raise WorkerBindError(f"Cannot listen on {self.bind}: {exc}. Choose another --bind address or port.") from None
        self.endpoint = router.get(zmq.LAST_ENDPOINT).decode()
        log.info("Worker serving on %s (%s)", self.endpoint, "CurveZMQ keys" if self.keys else "no keys, local only")

    def _loop(self, stop: threading.Event, router: zmq.Socket, monitor: zmq.Socket, own: list[zmq.Socket]) -> None:
        poller = zmq.Poller()
        for socket in (router, monitor, *own):
            poller.register(socket, zmq.POLLIN)
        while not stop.is_set():
            events = dict(poller.poll(POLL_MS))
            for socket in own:
                if socket in events:
                    self.backend.on_ready(socket)
            if router in events:
                self._receive(router)
            if monitor in events:
                self._on_disconnects(monitor)
            self.backend.tick()
            self._probe(router)
            self._evict_gone_clients(router)
            self._log_status()

    def _log_status(self) -> None:
        now = time.monotonic()
        if now >= self._next_status_log:
            self._next_status_log = now + STATUS_LOG_INTERVAL
            line = self.backend.summary()
            if line is not None:
                log.info("%s", line)

    def _log_summary(self) -> None:
        counters = self.counters
        if self.endpoint is not None:
            log.info(
                "Worker stopped: %d frames for %d clients; %d stale frames skipped, %d avatars received, "
                "%d bad messages dropped",
                counters.frames,
                counters.clients,
                counters.dropped_frames,
                counters.avatar_uploads,
                counters.rejected_messages,
            )

    # -- socket thread -----------------------------------------------------------------------------------

    def _send(self, router: zmq.Socket, identity: bytes, parts: list[bytes]) -> bool:
        """Send without ever blocking: a client that does not read loses the message; False if it is not connected."""
        try:
            router.send_multipart([identity, *parts], zmq.NOBLOCK)
        except zmq.Again:
            self._bad.warning("unread", "Client %s does not read its answers; dropped one", _name(identity))
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            if identity in self._admission:
                self._unreachable.setdefault(identity, time.monotonic())
            return False
        return True

    def _receive(self, router: zmq.Socket) -> None:
        for _ in range(RECEIVE_BATCH):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = frames[0].bytes
            if identity.startswith(b"\0"):
                # ZeroMQ's own names for a peer that set no identity and for a connection replaced by its
                # client's reconnect (what was left on it): clients set their identity, so neither is one.
                log.debug("Ignored a message from a connection without a client identity")
                continue
            self._unreachable.pop(identity, None)
            try:
                self._serve_message(router, identity, frames)
            except Exception as exc:  # noqa: BLE001 - whatever a message does, the socket thread keeps serving
                self._reject(identity, f"it could not be handled ({type(exc).__name__})", kind="internal error")

    def _serve_message(self, router: zmq.Socket, identity: bytes, frames: list[zmq.Frame]) -> None:
        try:
            message = decode_message([frame.bytes for frame in frames[1:]])
        except ProtocolError as exc:
            self._reject(identity, str(exc), kind=exc.kind)
            return
        if message.type == "status":
            # Monitoring holds no place and works while the worker is full.
            self._send(router, identity, self._report(message.id))
            return
        known = identity in self._admission
        refusal = self._admission.check(identity, _peer(frames[0], self.keys is not None), message.type in _REQUESTS)
        if message.type == "bye":
            if known and refusal is None:
                self._forget(identity, "left")
            return
        if refusal is not None:
            code, reason = refusal
            if code == "busy":
                self._refuse(identity, frames[0], reason)
                self._send(router, identity, encode_message("error", message.id, code=code, message=reason))
            else:
                self._send(router, identity, self._reject(identity, reason, message.id, kind="identity"))
            return
        if not known and identity in self._admission:
            self._refused.pop(identity, None)
            log.info("Client %s connected from %s", _name(identity), _peer_address(frames[0]))
        problem = self.backend.problem
        if problem is not None and message.type in ("hello", "ping", *_REQUESTS):
            # Clients show this and keep asking (hello) until the model is back, then restore their state.
            self._send(router, identity, encode_message("error", message.id, code="unavailable", message=problem[:200]))
        elif message.type == "hello":
            # The welcome tells the side of the results (256 for FOMM, 512 for LivePortrait).
            self._send(router, identity, encode_message("welcome", message.id, size=self.backend.output_size))
        elif message.type == "ping":
            self._send(router, identity, encode_message("pong", message.id))
        elif message.type in _REQUESTS:
            self._file(router, identity, message)
        else:
            reason = f"{message.type} is not a request"
            self._send(router, identity, self._reject(identity, reason, message.id, kind="not a request"))

    def _report(self, request_id: int) -> list[bytes]:
        payload = json.dumps(self.status(), separators=(",", ":"), allow_nan=False).encode()
        return encode_message("report", request_id, payload, enc="json")

    def _file(self, router: zmq.Socket, identity: bytes, message: Message) -> None:
        """Hand a request to the backend; a frame it replaces is answered `dropped` now."""
        accepted, replaced = self._inbox.put(identity, message)
        if not accepted:
            self._send(router, identity, self._reject(identity, "the queue is full", message.id, kind="quota"))
        elif replaced is not None:
            self.counters.dropped_frames += 1
            self._send(router, identity, encode_message("dropped", replaced.id))

    def _refuse(self, identity: bytes, frame: zmq.Frame, reason: str) -> None:
        """Log a client turned away for want of a place: once per client while it keeps asking."""
        now = time.monotonic()
        if identity not in self._refused and len(self._refused) < REFUSALS_REMEMBERED:
            self._bad.warning("refused", "Refused client %s from %s: %s", _name(identity), _peer_address(frame), reason)
        if identity in self._refused or len(self._refused) < REFUSALS_REMEMBERED:
            self._refused[identity] = now

    def _reject(self, identity: bytes, reason: str, request_id: int = 0, kind: str = "invalid") -> list[bytes]:
        """Count and log (rate-limited per kind) a message the worker will not serve; returns the error answer."""
        self.counters.rejected_messages += 1
        self._bad.warning(kind, "Dropped a message from client %s: %s", _name(identity), reason)
        return encode_message("error", request_id, code="rejected", message=reason[:200])

    def _on_disconnects(self, monitor: zmq.Socket) -> None:
        while monitor.poll(0):
            recv_monitor_message(monitor)
        # Probes already due are kept: a stream of connections that drop must not postpone them for ever.
        if not self._probes:
            now = time.monotonic()
            self._probes = [now + delay for delay in PROBE_DELAYS]

    def _probe(self, router: zmq.Socket) -> None:
        """After a lost connection, find whose it was: sending to a client that has gone fails at once."""
        if not self._probes or self._probes[0] > time.monotonic():
            return
        self._probes.pop(0)
        for identity in self._admission.identities():
            self._send(router, identity, encode_message("pong", 0))

    def _evict_gone_clients(self, router: zmq.Socket) -> None:
        """Forget clients silent for `client_timeout`, and disconnected ones that did not come back in time."""
        now = time.monotonic()
        deadline = now - self.client_timeout
        self._refused = {identity: seen for identity, seen in self._refused.items() if seen >= deadline}
        for identity in self._admission.silent_since(deadline):
            self._forget(identity, "went silent")
        for identity, since in list(self._unreachable.items()):
            if now - since < RECONNECT_GRACE:
                continue
            del self._unreachable[identity]
            if not self._send(router, identity, encode_message("pong", 0)):
                self._unreachable.pop(identity, None)
                self._forget(identity, "disconnected")

    def _forget(self, identity: bytes, why: str) -> None:
        self._unreachable.pop(identity, None)
        if self._admission.remove(identity):
            self._inbox.forget(identity)
            log.info("Client %s %s; forgetting it", _name(identity), why)


def _peer_address(frame: zmq.Frame) -> str:
    try:
        return frame.get("Peer-Address")
    except zmq.ZMQError:
        return "an unknown address"


def _peer(frame: zmq.Frame, keyed: bool) -> str:
    """Who sent a message, as far as places go: its CurveZMQ key with keys, else its address."""
    if keyed:
        with suppress(zmq.ZMQError):
            return f"key {frame.get('User-Id')}"
    return f"address {_peer_address(frame)}"


def _name(identity: bytes) -> str:
    """A client identity for the log: hex, and short (a peer may choose up to 255 bytes)."""
    text = identity.hex()
    return text if len(text) <= 40 else text[:40] + "..."
