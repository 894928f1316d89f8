"""A predictor that runs the model on a remote worker: the same interface as the local one, over ZeroMQ.

A background thread owns the DEALER socket: it sends heartbeats, notices a dead or absent worker,
reconnects, uploads avatars the worker lacks and restores the client's state on a restarted worker.
Callers only ever wait a bounded time: without a worker, `predict` returns the input frame.
"""
from __future__ import annotations

import logging
import statistics
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from ..errors import AvatarifyError
from ..predictor import content_key, prepare_frame
from .keys import ClientKeys
from .protocol import (
    DEFAULT_JPEG_QUALITY,
    ENCODINGS,
    MAX_PART_BYTES,
    ProtocolError,
    decode_message,
    encode_image,
    encode_message,
)

log = logging.getLogger(__name__)

CONNECTING = "connecting"
CONNECTED = "connected"
UNREACHABLE = "worker unreachable"
CLOSED = "closed"
HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 2.0
FRAME_TIMEOUT = 2.0
# In strict mode a frame that gets no result is an error, so slow frames get more time.
STRICT_FRAME_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
# Secure handshakes cut short this many times in a row mean the worker's key is not the one given.
REFUSAL_HANDSHAKES = 3
# Two frames in flight hide one network round trip; more would only add latency.
MAX_IN_FLIGHT = 2
STATS_WINDOW = 100
_MONITOR_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)
_ID = struct.Struct("!q")
_CLOSE = b"close"


class WorkerRefusedError(AvatarifyError):
    """The worker does not accept this client: wrong keys, or keys on one side only."""


class WorkerAddressError(AvatarifyError):
    """The worker address is not one ZeroMQ can connect to."""


class WorkerLostError(AvatarifyError):
    """In strict mode: the worker did not animate a frame (gone, or too slow)."""


@dataclass(frozen=True)
class RemoteStats:
    """How the remote predictor is doing; times and sizes are medians over the recent frames.

    `overhead_ms` is what going remote adds to each frame: its round trip less the worker's model time.
    """

    state: str
    round_trip_ms: float | None
    worker_ms: float | None
    overhead_ms: float | None
    bytes_per_frame: float | None
    frames: int
    dropped_frames: int
    passthrough_frames: int
    avatar_uploads: int


@dataclass
class _Request:
    sent_at: float
    parts: list[bytes]
    avatar: str
    replayed: bool = False


class RemotePredictor:
    """An AvatarPredictor whose model runs on a worker (`avatarify worker`) at `address`.

    Frames travel as JPEG at `jpeg_quality` or raw (`encoding`); `relative`, `adapt_movement_scale`
    and `motion_strength` go with every frame. `state` says whether the worker is reachable; while it
    is not, `predict` returns the input frame resized to 256x256 and the client keeps reconnecting.
    With `strict` (for rendering files) `predict` raises WorkerLostError instead of returning anything
    but this frame's own result; `frame_timeout` is then STRICT_FRAME_TIMEOUT unless given.
    A worker that refuses the keys, or is full, raises WorkerRefusedError from the constructor.
    """

    def __init__(
        self,
        address: str,
        keys: ClientKeys | None = None,
        encoding: str = "jpeg",
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
        relative: bool = True,
        adapt_movement_scale: bool = True,
        motion_strength: float = 1.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        frame_timeout: float | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        strict: bool = False,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, not {jpeg_quality}")
        self.address = address
        self.keys = keys
        self.encoding = encoding
        self.jpeg_quality = int(jpeg_quality)
        self.relative = relative
        self.adapt_movement_scale = adapt_movement_scale
        self.motion_strength = motion_strength
        self.strict = strict
        if frame_timeout is None:
            frame_timeout = STRICT_FRAME_TIMEOUT if strict else FRAME_TIMEOUT
        self.frame_timeout = frame_timeout
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout

        self._cond = threading.Condition()
        self._state = CONNECTING
        self._problem: str | None = None
        self._last_id = 0
        self._avatar: np.ndarray | None = None
        self._avatar_key: str | None = None
        self._uploading: str | None = None
        self._neutral_seq = 0
        self._neutral_frame: np.ndarray | None = None
        self._calibrate_pending = True
        self._in_flight: dict[int, _Request] = {}
        self._newest: np.ndarray | None = None
        self._newest_id = 0
        self._round_trips: deque[float] = deque(maxlen=STATS_WINDOW)
        self._worker_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self._overheads: deque[float] = deque(maxlen=STATS_WINDOW)
        self._frame_bytes: deque[int] = deque(maxlen=STATS_WINDOW)
        self._frames = 0
        self._dropped = 0
        self._passthrough = 0
        self._uploads = 0
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
            raise WorkerAddressError(
                f"Cannot connect to {address!r}: {exc}. Give the worker as tcp://HOST:PORT."
            ) from None
        self._opened_at = time.monotonic()
        # When the oldest message still awaiting an answer was sent (every message gets one); a thread that
        # was itself kept from running sends its heartbeat late, so silence is timed from the sending.
        self._unanswered_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="remote-predictor", daemon=True)
        self._thread.start()
        if not self.wait_until_connected(connect_timeout):
            if self.state.startswith("refused"):
                message = self._problem or self.state
                self.close()
                raise WorkerRefusedError(message)
            log.warning("No answer from the worker at %s yet; showing the camera image until it answers.", address)

    # -- the AvatarPredictor interface --------------------------------------------------------------------

    @property
    def avatar(self) -> np.ndarray | None:
        """The current avatar as the 256x256 RGB image the model sees."""
        return self._avatar

    @property
    def device(self) -> str:
        return f"remote {self.address}"

    @property
    def device_name(self) -> str:
        """Where the model runs, with the connection state when the worker is not serving this client."""
        state = self._state
        return self.device if state == CONNECTED else f"{self.device} ({state})"

    def set_avatar(self, image: np.ndarray) -> None:
        """Make `image` the avatar; the worker receives it only if it does not already know its content."""
        prepared = prepare_frame(image)
        key = content_key(prepared)
        with self._cond:
            self._avatar, self._avatar_key = prepared, key
            if self._state == CONNECTED:
                self._push(encode_message("avatar", self._new_id(), hash=key))

    def calibrate(self) -> None:
        """Take the next driving frame as the neutral pose."""
        with self._cond:
            self._calibrate_pending = True

    def set_neutral(self, frame: np.ndarray) -> None:
        """Take `frame` as the neutral pose now."""
        prepared = prepare_frame(frame)
        with self._cond:
            self._neutral_seq += 1
            self._neutral_frame = prepared
            self._calibrate_pending = False
            if self._state == CONNECTED:
                self._push(self._neutral_message())

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """The worker's newest animated frame (256x256 RGB uint8), never older than one returned before.

        Waits at most `frame_timeout` for this frame's result; returns the input frame resized to
        256x256 while the worker is unreachable or refuses this client, and until its first result.
        In strict mode returns only this frame's result, and raises WorkerLostError instead.
        """
        prepared = prepare_frame(frame)
        with self._cond:
            if self._avatar_key is None:
                raise RuntimeError("No avatar set; call set_avatar() first.")
            if self._state != CONNECTED:
                if self.strict:
                    raise self._lost(self._state)
                self._passthrough += 1
                return prepared
            if not self.strict and len(self._in_flight) >= MAX_IN_FLIGHT:
                # The link or the worker is behind: skip this frame rather than queue it up.
                self._dropped += 1
                target = min(self._in_flight)
            else:
                target = self._send_frame(prepared)
            deadline = time.monotonic() + self.frame_timeout
            while self._state == CONNECTED and self._newest_id < target and target in self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self.strict and self._newest_id != target:
                why = f"no result within {self.frame_timeout:g} s" if self._state == CONNECTED else self._state
                raise self._lost(why)
            if self._state != CONNECTED or self._newest is None:
                self._passthrough += 1
                return prepared
            return self._newest.copy()

    # -- state and statistics -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """ "connecting", "connected", "worker unreachable", "refused: <why>" or "closed"."""
        return self._state

    def wait_until_connected(self, timeout: float) -> bool:
        """Wait until the worker answers (True), refuses this client or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._state != CONNECTED and not self._state.startswith("refused"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._state == CLOSED:
                    return False
                self._cond.wait(remaining)
            return self._state == CONNECTED

    def stats(self) -> RemoteStats:
        """Round trip, worker model time, bytes per frame (both ways), dropped and passthrough frames, uploads."""
        with self._cond:
            return RemoteStats(
                state=self._state,
                round_trip_ms=_median(self._round_trips),
                worker_ms=_median(self._worker_times),
                overhead_ms=_median(self._overheads),
                bytes_per_frame=_median(self._frame_bytes),
                frames=self._frames,
                dropped_frames=self._dropped,
                passthrough_frames=self._passthrough,
                avatar_uploads=self._uploads,
            )

    def close(self) -> None:
        """Stop the background thread and close the connection."""
        if self._context.closed:
            return
        if self._thread.is_alive():
            with self._cond:
                self._front.send(_CLOSE)
            self._thread.join()
        self._front.close(linger=0)
        self._context.term()

    def __enter__(self) -> RemotePredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- caller side (holding self._cond) -----------------------------------------------------------------

    def _new_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def _push(self, parts: list[bytes], request_id: int = 0) -> bool:
        """Hand a message to the socket thread; False if it is too far behind to take it."""
        try:
            self._front.send_multipart([_ID.pack(request_id), *parts], zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _lost(self, why: str) -> WorkerLostError:
        return WorkerLostError(
            f"The worker at {self.address} stopped answering ({why}); nothing was written. "
            "Check that it runs and try again."
        )

    def _neutral_message(self) -> list[bytes]:
        assert self._neutral_frame is not None
        payload = encode_image(self._neutral_frame, self.encoding, self.jpeg_quality)
        return encode_message("neutral", self._new_id(), payload, seq=self._neutral_seq, enc=self.encoding)

    def _send_frame(self, prepared: np.ndarray) -> int:
        calibrate = self._calibrate_pending
        if calibrate:
            self._calibrate_pending = False
            self._neutral_seq += 1
            self._neutral_frame = prepared
        request_id = self._new_id()
        parts = encode_message(
            "predict",
            request_id,
            encode_image(prepared, self.encoding, self.jpeg_quality),
            enc=self.encoding,
            quality=self.jpeg_quality,
            avatar=self._avatar_key,
            neutral=self._neutral_seq,
            calibrate=calibrate,
            relative=bool(self.relative),
            adapt_movement_scale=bool(self.adapt_movement_scale),
            motion_strength=float(self.motion_strength),
        )
        self._in_flight[request_id] = _Request(time.monotonic(), parts, self._avatar_key or "")
        if not self._push(parts, request_id):
            del self._in_flight[request_id]
        return request_id

    # -- socket thread ------------------------------------------------------------------------------------

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
                    self._send(encode_message("ping" if self._state == CONNECTED else "hello", 0))
                    self._check_liveness(now)
        finally:
            self._close_dealer()
            back.close(linger=0)
            with self._cond:
                self._state = CLOSED
                self._cond.notify_all()

    def _open(self) -> tuple[zmq.Socket, zmq.Socket]:
        dealer = self._context.socket(zmq.DEALER)
        dealer.linger = 0
        # Nothing queues for a worker that is not there: sends fail at once and frames fall back to passthrough.
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
        self._dealer.close(linger=0)

    def _reset(self, state: str) -> None:
        """Drop the connection and everything queued on it; a fresh socket reconnects on its own."""
        self._close_dealer()
        self._dealer, self._monitor = self._open()
        self._opened_at = time.monotonic()
        self._unanswered_since = None
        with self._cond:
            if self._state == CONNECTED and not self.strict:
                log.warning(
                    "The worker at %s stopped answering; showing the camera image until it is back.", self.address
                )
            self._set_state(state)
            self._in_flight.clear()
            self._uploading = None
            self._newest = None

    def _set_state(self, state: str, problem: str | None = None) -> None:
        self._state = state
        self._problem = problem
        self._cond.notify_all()

    def _send(self, parts: list[bytes]) -> bool:
        # Timed from the attempt: a send that fails for want of a connection is unanswered too.
        if self._unanswered_since is None:
            self._unanswered_since = time.monotonic()
        try:
            self._dealer.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def _forward(self, back: zmq.Socket) -> bool:
        while True:
            try:
                parts = back.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return True
            if parts == [_CLOSE]:
                return False
            request_id = _ID.unpack(parts[0])[0]
            if not self._send(parts[1:]) and request_id:
                with self._cond:
                    self._in_flight.pop(request_id, None)
                    self._cond.notify_all()

    def _check_liveness(self, now: float) -> None:
        with self._cond:
            state = self._state
            expired = [i for i, r in self._in_flight.items() if now - r.sent_at > 3 * self.frame_timeout]
            for request_id in expired:
                del self._in_flight[request_id]
            if expired:
                self._cond.notify_all()
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
                self._send(encode_message("hello", 0))
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                if self._state == CONNECTED:
                    self._reset(UNREACHABLE)
                    return  # the monitor belonged to the socket just replaced
            else:
                reason = self._refusal(event["event"], event["value"])
                if reason is None:
                    continue
                with self._cond:
                    if self._problem != reason:
                        log.error("%s", reason)
                    self._set_state(f"refused: {reason}", reason)

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
                message = decode_message(parts)
                frame = message.frame() if message.type == "result" else None
            except ProtocolError as exc:
                log.warning("Dropped a message from the worker: %s", exc)
                continue
            with self._cond:
                self._on_reply(message.type, message.id, message.header, frame, len(parts[-1]))

    def _on_reply(
        self, kind: str, request_id: int, header: dict[str, Any], frame: np.ndarray | None, size: int
    ) -> None:
        if kind == "welcome":
            if self._state == CONNECTED:
                return  # the answer to a second hello sent while the first was on its way
            log.info("Connected to the worker at %s", self.address)
            self._set_state(CONNECTED)
            # A restarted worker knows nothing of this client: restore the avatar and the neutral pose.
            if self._avatar_key is not None:
                self._send(encode_message("avatar", self._new_id(), hash=self._avatar_key))
            if self._neutral_frame is not None:
                self._send(self._neutral_message())
        elif kind == "avatar_ok":
            if header["known"] and self._uploading == header["hash"]:
                self._uploading = None
            elif not header["known"] and header["hash"] == self._avatar_key:
                self._upload()
        elif kind == "result":
            request = self._in_flight.pop(request_id, None)
            if request is None or request_id <= self._newest_id:
                return
            for older in [i for i in self._in_flight if i < request_id]:
                del self._in_flight[older]
            self._newest, self._newest_id = frame, request_id
            self._frames += 1
            round_trip = (time.monotonic() - request.sent_at) * 1000.0
            self._round_trips.append(round_trip)
            self._worker_times.append(float(header["model_ms"]))
            self._overheads.append(round_trip - float(header["model_ms"]))
            self._frame_bytes.append(len(request.parts[-1]) + size)
            self._cond.notify_all()
        elif kind == "dropped":
            if self._in_flight.pop(request_id, None) is not None:
                self._dropped += 1
                self._cond.notify_all()
        elif kind == "error":
            self._on_error(request_id, header["code"], header["message"])

    def _on_error(self, request_id: int, code: str, text: str) -> None:
        if code == "busy":
            reason = (
                f"The worker at {self.address} is busy: it serves as many clients as it can. "
                "Close another client or try again later."
            )
            if self._problem != reason:
                log.error("%s", reason)
            # Each heartbeat asks again (hello): the worker welcomes this client once a place is free.
            self._set_state(f"refused: {reason}", reason)
            return
        request = self._in_flight.get(request_id)
        if request is not None and code in ("need_avatar", "need_neutral") and not request.replayed:
            if request.avatar == self._avatar_key:
                # The worker lost or never had this client's state (restart, eviction): restore it, then retry.
                if code == "need_avatar":
                    self._upload()
                elif self._neutral_frame is not None:
                    self._send(self._neutral_message())
                request.replayed = True
                self._send(request.parts)
                return
        if code == "need_avatar":
            # Even the upload made for this request did not reach the worker: the next frame uploads again.
            self._uploading = None
        log.warning("The worker at %s could not serve a request: %s (%s)", self.address, text, code)
        self._in_flight.pop(request_id, None)
        self._cond.notify_all()

    def _upload(self) -> None:
        if self._avatar is None or self._uploading == self._avatar_key:
            return
        payload = encode_image(self._avatar, "raw")
        if self._send(encode_message("avatar", self._new_id(), payload, hash=self._avatar_key, enc="raw")):
            self._uploading = self._avatar_key
            self._uploads += 1
            log.info("Sent the avatar to the worker (%d bytes)", len(payload))


def _median(values: deque) -> float | None:
    return statistics.median(values) if values else None
