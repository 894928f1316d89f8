"""A client's connection to a worker: one background thread owns the DEALER socket, sends heartbeats, notices a
dead, absent or refusing worker, reconnects on its own and hands every valid message to its listener.

The caller's side (avatar, neutral pose, frames in flight) lives in `client.RemotePredictor`; the two share one
condition, so a waiting caller wakes on a result as on a state change.
"""
from __future__ import annotations

import logging
import struct
import threading
import time
import uuid
from typing import Protocol

import zmq
from zmq.utils.monitor import recv_monitor_message

from ..core.errors import AvatarifyError
from ..core.ratelimit import RateLimitedLog
from .keys import ClientKeys
from .protocol import MAX_PART_BYTES, Message, ProtocolError, decode_message, encode_message

log = logging.getLogger(__name__)

CONNECTING = "connecting"
CONNECTED = "connected"
UNREACHABLE = "worker unreachable"
CLOSED = "closed"
REFUSED = "refused"
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 2.0
# Secure handshakes cut short this many times in a row mean the worker's key is not the one given.
REFUSAL_HANDSHAKES = 3
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)
_ID = struct.Struct("!q")
_CLOSE = b"close"
BYE_LINGER_MS = 200


class WorkerAddressError(AvatarifyError):
    """The worker address is not one ZeroMQ can connect to."""


class ConnectionListener(Protocol):
    """What the connection tells its owner; called on the connection's thread, holding the shared condition."""

    def on_connected(self, welcome: Message) -> None:
        """The worker welcomed this client (first time or after a reconnect): restore its state there."""

    def on_message(self, message: Message, size: int) -> None:
        """A valid message from the worker (`size`: bytes of its last part)."""

    def on_unsent(self, request_id: int) -> None:
        """A request could not be handed to the socket (no connection): it will get no answer."""

    def on_reset(self) -> None:
        """The connection was dropped: nothing sent before will be answered."""

    def on_heartbeat(self, now: float) -> None:
        """Called at every heartbeat, to expire requests that were never answered."""


class WorkerConnection:
    """Keeps a DEALER socket connected to `address` on its own thread until `close`.

    `state` is "connecting", "connected", "worker unreachable", "refused: <why>" or "closed"; `problem` holds
    the one-line reason of a refusal. `push` may be called from any thread (holding `cond`); `send` only from
    listener callbacks, which run on the connection's thread.
    """

    def __init__(
        self,
        address: str,
        listener: ConnectionListener,
        cond: threading.Condition,
        keys: ClientKeys | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ) -> None:
        self.address = address
        self.keys = keys
        self.cond = cond
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.state = CONNECTING
        self.problem: str | None = None
        self._listener = listener
        self._bad = RateLimitedLog(log)
        self._failed_handshakes = 0
        # One identity for every socket this client opens, so that the worker sees a reconnect as the
        # same client (keeping its place) rather than as one more.
        self._routing_id = uuid.uuid4().hex.encode()
        self._context = zmq.Context()
        self._front = self._context.socket(zmq.PAIR)
        self._front.bind(f"inproc://avatarify-remote-{id(self)}")
        try:
            self._dealer, self._monitor = self._open()
        except zmq.ZMQError as exc:
            self._front.close(linger=0)
            self._context.term()
            raise WorkerAddressError(f"Cannot connect to {address!r}: {exc}. Give the worker as tcp://HOST:PORT.") from None
        self._opened_at = time.monotonic()
        # When the oldest message still awaiting an answer was sent (every message gets one); a thread that
        # was itself kept from running sends its heartbeat late, so silence is timed from the sending.
        self._unanswered_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="remote-connection", daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------------------------

    def push(self, parts: list[bytes], request_id: int = 0) -> bool:
        """Hand a message to the connection's thread (hold `cond`); False if it is too far behind to take it."""
        try:
            self._front.send_multipart([_ID.pack(request_id), *parts], zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def wait_until_connected(self, timeout: float) -> bool:
        """Wait until the worker answers (True), refuses this client, the connection closes or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.state != CONNECTED and not self.state.startswith(REFUSED):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.state == CLOSED:
                    return False
                self.cond.wait(remaining)
            return self.state == CONNECTED

    def close(self) -> None:
        """Stop the thread and close the sockets; calling it again does nothing."""
        if self._context.closed:
            return
        if self._thread.is_alive():
            with self.cond:
                self._front.send(_CLOSE)
            self._thread.join()
        self._front.close(linger=0)
        self._context.term()

    # -- the connection's thread --------------------------------------------------------------------------

    def send(self, parts: list[bytes]) -> bool:
        """Send on the socket now (listener callbacks only); False when there is no connection to take it."""
        # Timed from the attempt: a send that fails for want of a connection is unanswered too.
        if self._unanswered_since is None:
            self._unanswered_since = time.monotonic()
        try:
            self._dealer.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _run(self) -> None:
        back = self._context.socket(zmq.PAIR)
        back.connect(f"inproc://avatarify-remote-{id(self)}")
        next_ping = 0.0
        try:
            while True:
                poller = zmq.Poller()
                for socket in (back, self._dealer, self._monitor):
                    poller.register(socket, zmq.POLLIN)
                wait_ms = max(0.0, next_ping - time.monotonic()) * 1000.0
                events = dict(poller.poll(wait_ms))
                if back in events and not self._forward(back):
                    return
                if self._monitor in events:
                    self._on_monitor_events()
                if self._dealer in events:
                    self._on_replies()
                now = time.monotonic()
                if now >= next_ping:
                    next_ping = now + self.heartbeat_interval
                    # Until the worker has welcomed this socket, each heartbeat asks for the welcome.
                    self.send(encode_message("ping" if self.state == CONNECTED else "hello", 0))
                    self._check_liveness(now)
        finally:
            self._close_dealer()
            back.close(linger=0)
            with self.cond:
                self._set_state(CLOSED)

    def _open(self) -> tuple[zmq.Socket, zmq.Socket]:
        dealer = self._context.socket(zmq.DEALER)
        dealer.linger = 0
        # Nothing queues for a worker that is not there: sends fail at once.
        dealer.immediate = True
        dealer.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
        dealer.setsockopt(zmq.RECONNECT_IVL, 100)
        dealer.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        dealer.setsockopt(zmq.ROUTING_ID, self._routing_id)
        if self.keys is not None:
            self.keys.apply(dealer)
        monitor = dealer.get_monitor_socket(_MONITOR_EVENTS)
        dealer.connect(self.address)
        return dealer, monitor

    def _close_dealer(self) -> None:
        self._dealer.disable_monitor()
        self._monitor.close(linger=0)
        self._dealer.close()  # linger 0 (set when opened), unless a farewell is on its way

    def _reset(self, state: str) -> None:
        """Drop the connection and everything queued on it; a fresh socket reconnects on its own."""
        self._close_dealer()
        self._dealer, self._monitor = self._open()
        self._opened_at = time.monotonic()
        self._unanswered_since = None
        with self.cond:
            if self.state == CONNECTED:
                log.warning("The worker at %s stopped answering; reconnecting.", self.address)
            self._set_state(state)
            self._listener.on_reset()

    def _set_state(self, state: str, problem: str | None = None) -> None:
        self.state = state
        self.problem = problem
        self.cond.notify_all()

    def _forward(self, back: zmq.Socket) -> bool:
        while True:
            try:
                parts = back.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if parts == [_CLOSE]:
                # Tell the worker this client is leaving, so that its place is free at once; a moment is
                # allowed for the message to leave.
                if self.state == CONNECTED and self.send(encode_message("bye", 0)):
                    self._dealer.linger = BYE_LINGER_MS
                return False
            request_id = _ID.unpack(parts[0])[0]
            if not self.send(parts[1:]) and request_id:
                with self.cond:
                    self._listener.on_unsent(request_id)

    def _check_liveness(self, now: float) -> None:
        with self.cond:
            state = self.state
            self._listener.on_heartbeat(now)
        silent = self._unanswered_since is not None and now - self._unanswered_since > self.heartbeat_timeout
        if state == CONNECTED and silent:
            self._reset(UNREACHABLE)
        elif state in (CONNECTING, UNREACHABLE) and now - self._opened_at > self.heartbeat_timeout:
            self._reset(UNREACHABLE)

    def _on_monitor_events(self) -> None:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._failed_handshakes = 0
                self.send(encode_message("hello", 0))
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                if self.state == CONNECTED:
                    self._reset(UNREACHABLE)
                    return  # the monitor belonged to the socket just replaced
            else:
                reason = self._refusal(event["event"], event["value"])
                if reason is not None:
                    self.refuse(reason)

    def refuse(self, reason: str) -> None:
        """Mark the connection refused (wrong keys, a full worker); heartbeats keep asking to be let in."""
        with self.cond:
            if self.problem != reason:
                log.error("%s", reason)
            self._set_state(f"{REFUSED}: {reason}", reason)

    def _refusal(self, event: int, value: int) -> str | None:
        """A one-line explanation of a failed handshake, saying what to do; None while it may be a network hiccup."""
        worker = f"The worker at {self.address}"
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return (
                f"{worker} does not accept this client's key: put the client.key that goes with your "
                "client.key_secret into the worker's authorized_clients folder and restart the worker."
            )
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            if self.keys is None:
                return f"{worker} requires keys: pass --worker-keys DIR with a client key pair it accepts."
            return f"{worker} does not use keys: start it with --keys, or connect without --worker-keys."
        if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            return f"{worker} does not speak the worker protocol (error {value:#x}); is it an avatarify worker?"
        # A worker that cannot read our handshake drops the connection, which looks like a network error
        # (and one happens when a worker dies mid-handshake): only repeats are a refusal.
        self._failed_handshakes += 1
        if self._failed_handshakes < REFUSAL_HANDSHAKES:
            return None
        if self.keys is None:
            return f"{worker} breaks off every handshake: it probably requires keys (pass --worker-keys DIR)."
        return (
            f"{worker} breaks off every secure handshake: it runs without keys (start it with --keys), "
            "or its key is not the server.key in your keys folder."
        )

    def _on_replies(self) -> None:
        while True:
            try:
                parts = self._dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._unanswered_since = None
            try:
                self._on_reply(parts)
            except ProtocolError as exc:
                self._bad.warning(exc.kind, "Dropped a message from the worker: %s", exc)
            except Exception as exc:  # noqa: BLE001 - a hostile or broken worker must not stop this thread
                self._bad.warning("internal error", "Dropped a message from the worker: %s", _describe(exc))

    def _on_reply(self, parts: list[bytes]) -> None:
        message = decode_message(parts)
        with self.cond:
            if message.type == "welcome":
                self._welcomed(message)
            else:
                self._listener.on_message(message, len(parts[-1]))

    def _welcomed(self, welcome: Message) -> None:
        if self.state == CONNECTED:
            return  # the answer to a second hello sent while the first was on its way
        log.info("Connected to the worker at %s", self.address)
        self._set_state(CONNECTED)
        self._listener.on_connected(welcome)


def _describe(exc: BaseException) -> str:
    """An unexpected failure as a short log text (its type, and the start of its message)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__
