"""The remote worker: serves the predictor to clients over a ZeroMQ ROUTER socket, one predictor state per client.

Two threads share the work. The socket thread owns the socket: it validates every message, answers
heartbeats at once (so a long model call never looks like a dead worker), queues the rest and
forgets clients that went silent. Clients name themselves (a ZeroMQ routing id not starting with a
zero byte), so that a reconnecting client keeps its place. The model thread takes everything queued
at once, skips all but the newest frame of each client (answering `dropped` for the others) and runs
the model.
"""
from __future__ import annotations

import ipaddress
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import zmq
from zmq.auth.thread import ThreadAuthenticator

from ..core.errors import AvatarifyError
from ..core.frame import AvatarPredictor, MotionOptions, content_key
from . import CLIENT_TIMEOUT, DEFAULT_BIND
from .keys import ServerKeys
from .protocol import MAX_PART_BYTES, Message, ProtocolError, decode_message, encode_image, encode_message

log = logging.getLogger(__name__)

MAX_CLIENTS = 8
AVATAR_CACHE_SIZE = 64
MAX_QUEUED = 256
POLL_MS = 250
# Jobs for the model thread besides messages: forget a client, or stop.
_EVICT = "evict"
_STOP = "stop"
_RESULTS_PIPE = "inproc://avatarify-worker-results-{}"


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


@dataclass
class ClientState:
    """One client's predictor and which avatar (content hash) and neutral pose (client's number) it holds."""

    predictor: AvatarPredictor
    avatar: str | None = None
    neutral: int | None = None


@dataclass
class WorkerCounters:
    """What the worker has done since it started, for logs and tests."""

    frames: int = 0
    dropped_frames: int = 0
    avatar_uploads: int = 0
    rejected_messages: int = 0
    clients: int = 0


class Worker:
    """Serves `predictor_factory()` predictors (sharing one model) to any number of clients over ZeroMQ."""

    def __init__(
        self,
        predictor_factory: Callable[[], AvatarPredictor],
        bind: str = DEFAULT_BIND,
        keys: ServerKeys | None = None,
        client_timeout: float = CLIENT_TIMEOUT,
    ) -> None:
        check_bind(bind, keys)
        self.predictor_factory = predictor_factory
        self.bind = bind
        self.keys = keys
        self.client_timeout = client_timeout
        self.counters = WorkerCounters()
        self._context = zmq.Context.instance()
        self._jobs: queue.Queue[tuple[bytes, Message | str]] = queue.Queue(MAX_QUEUED)
        self._clients: dict[bytes, ClientState] = {}
        self._avatars: OrderedDict[str, np.ndarray] = OrderedDict()
        self._last_seen: dict[bytes, float] = {}
        # Clients turned away while full, and when each last asked: each is logged once, not at every hello.
        self._refused: dict[bytes, float] = {}
        self.endpoint: str | None = None

    def serve(self, stop: threading.Event | None = None) -> None:
        """Serve until `stop` is set (or KeyboardInterrupt); clients may come and go meanwhile."""
        stop = stop or threading.Event()
        auth = None
        router = self._context.socket(zmq.ROUTER)
        router.linger = 0
        router.setsockopt(zmq.MAXMSGSIZE, MAX_PART_BYTES)
        # A client that reconnects keeps its identity (and place): the new connection replaces the old one.
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        pipe_address = _RESULTS_PIPE.format(uuid.uuid4().hex)
        results = self._context.socket(zmq.PAIR)
        results.bind(pipe_address)
        model_thread = threading.Thread(target=self._run_model, args=(pipe_address,), name="worker-model", daemon=True)
        try:
            if self.keys is not None:
                auth = ThreadAuthenticator(self._context, log=logging.getLogger(f"{__name__}.auth"))
                auth.start()
                auth.configure_curve(domain="*", location=str(self.keys.authorized_dir))
                self.keys.apply(router)
            try:
                router.bind(self.bind)
            except zmq.ZMQError as exc:
                raise WorkerBindError(
                    f"Cannot listen on {self.bind}: {exc}. Choose another --bind address or port."
                ) from None
            self.endpoint = router.get(zmq.LAST_ENDPOINT).decode()
            model_thread.start()
            log.info(
                "Worker serving on %s (%s)", self.endpoint, "CurveZMQ keys" if self.keys else "no keys, local only"
            )
            poller = zmq.Poller()
            poller.register(router, zmq.POLLIN)
            poller.register(results, zmq.POLLIN)
            while not stop.is_set():
                events = dict(poller.poll(POLL_MS))
                if results in events:
                    self._forward_results(results, router)
                if router in events:
                    self._receive(router)
                self._evict_silent_clients()
        finally:
            try:
                self._jobs.put_nowait((b"", _STOP))
            except queue.Full:
                # Stopping: queued requests go unanswered anyway; only this thread adds jobs, so one out makes room.
                with suppress(queue.Empty):
                    self._jobs.get_nowait()
                self._jobs.put_nowait((b"", _STOP))
            if model_thread.is_alive():
                model_thread.join(timeout=5)
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
            results.close(linger=0)
            router.close(linger=0)
            if auth is not None:
                auth.stop()

    # -- socket thread -----------------------------------------------------------------------------------

    def _forward_results(self, results: zmq.Socket, router: zmq.Socket) -> None:
        while True:
            try:
                parts = results.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # A ROUTER silently discards messages to clients that have gone, so a vanished client costs nothing.
            router.send_multipart(parts, zmq.NOBLOCK)

    def _receive(self, router: zmq.Socket) -> None:
        for _ in range(MAX_QUEUED):
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
            try:
                message = decode_message([frame.bytes for frame in frames[1:]])
            except ProtocolError as exc:
                self._reject(identity, str(exc))
                continue
            if not self._admit(identity, frames[0]):
                router.send_multipart(
                    [identity, *encode_message("error", message.id, code="busy", message="the worker is full")]
                )
                continue
            if message.type == "hello":
                router.send_multipart([identity, *encode_message("welcome", message.id)])
            elif message.type == "ping":
                router.send_multipart([identity, *encode_message("pong", message.id)])
            elif message.type in ("avatar", "neutral", "predict"):
                try:
                    self._jobs.put_nowait((identity, message))
                except queue.Full:
                    router.send_multipart([identity, *self._reject(identity, "the queue is full", message.id)])
            else:
                reason = f"{message.type} is not a request"
                router.send_multipart([identity, *self._reject(identity, reason, message.id)])

    def _admit(self, identity: bytes, frame: zmq.Frame) -> bool:
        """Note that `identity` was heard from now; False for a new client while MAX_CLIENTS are served."""
        now = time.monotonic()
        if identity not in self._last_seen:
            if len(self._last_seen) >= MAX_CLIENTS:
                if identity not in self._refused:
                    log.warning("Refused client %s: already serving %d clients", identity.hex(), MAX_CLIENTS)
                self._refused[identity] = now
                return False
            self._refused.pop(identity, None)
            log.info("Client %s connected from %s", identity.hex(), _peer_address(frame))
        self._last_seen[identity] = now
        return True

    def _reject(self, identity: bytes, reason: str, request_id: int = 0) -> list[bytes]:
        """Count and log a message the worker will not serve; returns the error answer to it."""
        self.counters.rejected_messages += 1
        log.warning("Dropped a message from client %s: %s", identity.hex(), reason)
        return encode_message("error", request_id, code="rejected", message=reason)

    def _evict_silent_clients(self) -> None:
        deadline = time.monotonic() - self.client_timeout
        self._refused = {identity: seen for identity, seen in self._refused.items() if seen >= deadline}
        for identity, seen in list(self._last_seen.items()):
            if seen < deadline:
                try:
                    self._jobs.put_nowait((identity, _EVICT))
                except queue.Full:
                    return  # the model thread is behind: forget the client on a later round
                del self._last_seen[identity]
                log.info("Client %s went silent; forgetting it", identity.hex())

    # -- model thread ------------------------------------------------------------------------------------

    def _run_model(self, pipe_address: str) -> None:
        replies = self._context.socket(zmq.PAIR)
        replies.connect(pipe_address)
        try:
            while True:
                batch = [self._jobs.get()]
                while True:
                    try:
                        batch.append(self._jobs.get_nowait())
                    except queue.Empty:
                        break
                newest = {
                    identity: i
                    for i, (identity, job) in enumerate(batch)
                    if isinstance(job, Message) and job.type == "predict"
                }
                if any(job == _STOP for _, job in batch):
                    return
                for i, (identity, job) in enumerate(batch):
                    if job == _EVICT:
                        self._clients.pop(identity, None)
                        continue
                    reply = self._handle(identity, job, stale=newest.get(identity, i) != i)
                    # Fails only once serve() has stopped waiting for this thread: nobody is left to answer.
                    with suppress(zmq.Again):
                        replies.send_multipart([identity, *reply], zmq.NOBLOCK)
        finally:
            replies.close(linger=0)

    def _handle(self, identity: bytes, message: Message, stale: bool) -> list[bytes]:
        try:
            state = self._clients.get(identity)
            if state is None:
                state = self._clients[identity] = ClientState(self.predictor_factory())
                self.counters.clients += 1
            if message.type == "avatar":
                return self._set_avatar(state, message)
            if message.type == "neutral":
                state.predictor.set_neutral(message.frame())
                state.neutral = message.header["seq"]
                return encode_message("neutral_ok", message.id, seq=state.neutral)
            return self._predict(state, message, stale)
        except ProtocolError as exc:
            return self._reject(identity, str(exc), message.id)
        except Exception:  # a failing model call must not stop the service for every client
            # The details (paths, internals) stay in this log; the client learns only that it failed.
            log.exception("Request %s of client %s failed", message.type, identity.hex())
            return encode_message("error", message.id, code="failed", message="the worker failed; see its log")

    def _set_avatar(self, state: ClientState, message: Message) -> list[bytes]:
        key = message.header["hash"]
        if message.payload is not None:
            image = message.frame()
            if content_key(image) != key:
                raise ProtocolError("avatar image does not match its hash")
            self._avatars[key] = image
            self.counters.avatar_uploads += 1
            log.info("Received avatar %s (%d bytes)", key[:12], len(message.payload))
            while len(self._avatars) > AVATAR_CACHE_SIZE:
                self._avatars.popitem(last=False)
        image = self._avatars.get(key)
        if image is None:
            return encode_message("avatar_ok", message.id, hash=key, known=False)
        self._avatars.move_to_end(key)
        state.predictor.set_avatar(image)
        state.avatar = key
        return encode_message("avatar_ok", message.id, hash=key, known=True)

    def _predict(self, state: ClientState, message: Message, stale: bool) -> list[bytes]:
        header = message.header
        predictor = state.predictor
        if stale:
            # A calibration frame sets the neutral pose even when a newer frame makes its picture useless.
            if header["calibrate"]:
                predictor.set_neutral(message.frame())
                state.neutral = header["neutral"]
            self.counters.dropped_frames += 1
            return encode_message("dropped", message.id)
        if state.avatar != header["avatar"]:
            image = self._avatars.get(header["avatar"])
            if image is None:
                return encode_message("error", message.id, code="need_avatar", message="avatar not uploaded")
            predictor.set_avatar(image)
            state.avatar = header["avatar"]
        if header["calibrate"]:
            predictor.calibrate()
        elif state.neutral != header["neutral"]:
            return encode_message("error", message.id, code="need_neutral", message="neutral pose not sent")
        frame = message.frame()
        predictor.motion = MotionOptions(
            header["relative"], header["adapt_movement_scale"], float(header["motion_strength"])
        )
        started = time.perf_counter()
        prediction = predictor.predict(frame)
        model_ms = (time.perf_counter() - started) * 1000.0
        state.neutral = header["neutral"]
        self.counters.frames += 1
        payload = encode_image(prediction, header["enc"], header["quality"])
        return encode_message("result", message.id, payload, model_ms=round(model_ms, 3), enc=header["enc"])


def _peer_address(frame: zmq.Frame) -> str:
    try:
        return frame.get("Peer-Address")
    except zmq.ZMQError:
        return "an unknown address"
