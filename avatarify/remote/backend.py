"""The model side of a worker, behind the front end that owns the socket: what a backend must do, and the local one.

The front end (`worker.Worker`) admits clients, validates their messages and files their requests in a
`RequestInbox`; a backend takes them from there and answers each one. `LocalBackend` runs the model on this
machine, on a thread of its own; `serve.backend.RayBackend` forwards the work to a Ray Serve deployment.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import zmq

from ..core.frame import FRAME_SIZE, AvatarPredictor, MotionOptions
from .avatars import AvatarStore
from .inbox import RequestInbox
from .protocol import Message, ProtocolError, encode_image, encode_message

log = logging.getLogger(__name__)

_RESULTS_PIPE = "inproc://avatarify-worker-results-{}"
# Model times kept for the status report.
TIMES_KEPT = 200

Send = Callable[[bytes, list[bytes]], bool]
Reject = Callable[[bytes, str, int, str], list[bytes]]


@dataclass
class WorkerCounters:
    """What the worker has done since it started, for logs and tests."""

    frames: int = 0
    dropped_frames: int = 0
    avatar_uploads: int = 0
    rejected_messages: int = 0
    clients: int = 0


@dataclass
class FrontEnd:
    """What the front end lends its backend: the ZeroMQ context, the inbox it files requests in, its counters,
    `reject` (count, log and answer a message it will not serve) and `send` (an answer to a client; on the socket
    thread only: a backend working on a thread of its own answers through a socket of its own)."""

    context: zmq.Context
    inbox: RequestInbox
    counters: WorkerCounters
    reject: Reject
    send: Send


class ModelBackend(Protocol):
    """The model side of a worker. Every method is called on the front end's socket thread."""

    output_size: int  # the side of the square results

    def open(self, front: FrontEnd) -> list[zmq.Socket]:
        """Start; the sockets of its own the front end should watch (`on_ready` is called when one has input)."""
        ...

    def on_ready(self, socket: zmq.Socket) -> None:
        """Take in what arrived on one of the sockets `open` returned."""
        ...

    def tick(self) -> None:
        """Called at every turn of the front end's loop: take filed requests, expire what waited too long."""
        ...

    @property
    def problem(self) -> str | None:
        """Why the backend cannot animate now (clients are told so), or None."""
        ...

    def status(self) -> dict[str, Any]:
        """Figures for `avatarify worker status` (JSON types only)."""
        ...

    def summary(self) -> str | None:
        """One line for the log, every few seconds while there is work; None when there is nothing new."""
        ...

    def close(self) -> None:
        """Stop (the inbox is already closed); calling it twice is harmless."""
        ...


@dataclass
class ClientState:
    """One client's predictor and which avatar (content hash) and neutral pose (client's number) it holds."""

    predictor: AvatarPredictor
    avatar: str | None = None
    neutral: int | None = None


@dataclass
class _ModelTimes:
    """Recent model times and the frame count at the last log line."""

    times: deque[float] = field(default_factory=lambda: deque(maxlen=TIMES_KEPT))
    logged_frames: int = 0
    logged_at: float = field(default_factory=time.monotonic)


class LocalBackend:
    """The model on this machine: a thread holds one `predictor_factory()` predictor per client (they share one
    model), takes every client's waiting requests at once and skips all but each client's newest frame. Results
    are `output_size` pixels square (512 for LivePortrait)."""

    def __init__(self, predictor_factory: Callable[[], AvatarPredictor], output_size: int = FRAME_SIZE) -> None:
        self.predictor_factory = predictor_factory
        self.output_size = output_size
        self._clients: dict[bytes, ClientState] = {}
        self._avatars = AvatarStore()
        self._times = _ModelTimes()
        self._front: FrontEnd | None = None
        self._results: zmq.Socket | None = None
        self._thread: threading.Thread | None = None

    problem = None

    def open(self, front: FrontEnd) -> list[zmq.Socket]:
        self._front = front
        pipe_address = _RESULTS_PIPE.format(uuid.uuid4().hex)
        self._results = front.context.socket(zmq.PAIR)
        self._results.bind(pipe_address)
        self._thread = threading.Thread(target=self._run_model, args=(pipe_address,), name="worker-model", daemon=True)
        self._thread.start()
        return [self._results]

    def on_ready(self, socket: zmq.Socket) -> None:
        assert self._front is not None
        while True:
            try:
                identity, *parts = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._front.send(identity, parts)

    def tick(self) -> None:
        """Nothing to do: the model thread waits on the inbox itself."""

    def status(self) -> dict[str, Any]:
        times = list(self._times.times)
        return {
            "backend": "local",
            "device": next((state.predictor.device_name for state in list(self._clients.values())), None),
            "sessions": len(self._clients),
            "model_ms": round(statistics.median(times), 2) if times else None,
        }

    def summary(self) -> str | None:
        assert self._front is not None
        frames, now = self._front.counters.frames, time.monotonic()
        new, seconds = frames - self._times.logged_frames, now - self._times.logged_at
        self._times.logged_frames, self._times.logged_at = frames, now
        if not new:
            return None
        report = self.status()
        return f"{new} frames in {seconds:.0f} s ({new / seconds:.1f} fps) for {report['sessions']} clients; " \
               f"model {report['model_ms']} ms a frame"  # fmt: skip

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._results is not None:
            self._results.close(linger=0)

    # -- model thread ------------------------------------------------------------------------------------

    def _run_model(self, pipe_address: str) -> None:
        assert self._front is not None
        replies = self._front.context.socket(zmq.PAIR)
        replies.connect(pipe_address)
        try:
            while True:
                batch, forgotten, closed = self._front.inbox.take()
                if closed:
                    return
                for identity in forgotten:
                    self._clients.pop(identity, None)
                newest = {identity: i for i, (identity, job) in enumerate(batch) if job.type == "predict"}
                for i, (identity, job) in enumerate(batch):
                    reply = self._handle(identity, job, stale=newest.get(identity, i) != i)
                    # Fails only once serve() has stopped waiting for this thread: nobody is left to answer.
                    with suppress(zmq.Again):
                        replies.send_multipart([identity, *reply], zmq.NOBLOCK)
        finally:
            replies.close(linger=0)

    def _handle(self, identity: bytes, message: Message, stale: bool) -> list[bytes]:
        assert self._front is not None
        try:
            state = self._clients.get(identity)
            if state is None:
                state = self._clients[identity] = ClientState(self.predictor_factory())
                self._front.counters.clients += 1
            if message.type == "avatar":
                return self._set_avatar(state, message)
            if message.type == "neutral":
                state.predictor.set_neutral(message.frame())
                state.neutral = message.header["seq"]
                return encode_message("neutral_ok", message.id, seq=state.neutral)
            return self._predict(state, message, stale)
        except ProtocolError as exc:
            return self._front.reject(identity, str(exc), message.id, exc.kind)
        except Exception:  # a failing model call must not stop the service for every client
            # The details (paths, internals) stay in this log; the client learns only that it failed.
            log.exception("Request %s of client %s failed", message.type, identity.hex()[:40])
            return encode_message("error", message.id, code="failed", message="the worker failed; see its log")

    def _set_avatar(self, state: ClientState, message: Message) -> list[bytes]:
        assert self._front is not None
        key = self._avatars.receive(message)
        self._front.counters.avatar_uploads = self._avatars.uploads
        image = self._avatars.get(key)
        if image is None:
            return encode_message("avatar_ok", message.id, hash=key, known=False)
        state.predictor.set_avatar(image)
        state.avatar = key
        return encode_message("avatar_ok", message.id, hash=key, known=True)

    def _predict(self, state: ClientState, message: Message, stale: bool) -> list[bytes]:
        assert self._front is not None
        header = message.header
        predictor = state.predictor
        if stale:
            # A calibration frame sets the neutral pose even when a newer frame makes its picture useless.
            if header["calibrate"]:
                predictor.set_neutral(message.frame())
                state.neutral = header["neutral"]
            self._front.counters.dropped_frames += 1
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
        predictor.motion = motion_options(header)
        started = time.perf_counter()
        prediction = predictor.predict(frame)
        model_ms = (time.perf_counter() - started) * 1000.0
        self._times.times.append(model_ms)
        state.neutral = header["neutral"]
        self._front.counters.frames += 1
        return result_message(message, prediction, model_ms)


def motion_options(header: dict[str, Any]) -> MotionOptions:
    """The motion options a `predict` message carries."""
    return MotionOptions(header["relative"], header["adapt_movement_scale"], float(header["motion_strength"]))


def result_message(message: Message, prediction: np.ndarray, model_ms: float) -> list[bytes]:
    """The answer to a `predict` message: the animated frame coded as the client sent its own."""
    header = message.header
    payload = encode_image(prediction, header["enc"], header["quality"])
    return encode_message("result", message.id, payload, model_ms=round(model_ms, 3), enc=header["enc"])
