"""A predictor that runs the model on a remote worker: the same interface as the local one, over ZeroMQ.

This is the caller's side of the connection: the avatar, the neutral pose, the frames in flight and the
statistics. The socket, heartbeats and reconnects belong to `connection.WorkerConnection`. Callers only ever
wait a bounded time; without a worker, `predict` raises `EngineUnavailable` and the pipeline decides what goes
out (the last avatar frame, unless the user chose to show the camera).
"""
from __future__ import annotations

import itertools
import logging
import threading
import time

import numpy as np

from ..core.errors import AvatarifyError, EngineUnavailable
from ..core.frame import FRAME_SIZE, MotionOptions, content_key, prepare_frame
from .connection import CLOSED, CONNECTED, REFUSED, UNREACHABLE, WorkerAddressError, WorkerConnection
from .keys import ClientKeys, load_client_keys
from .options import RemoteOptions
from .protocol import DEFAULT_JPEG_QUALITY, ENCODINGS, Message, encode_image, encode_message
from .requests import Request, Requests
from .stats import RemoteStats, StatsWindow

log = logging.getLogger(__name__)

__all__ = [
    "CLOSED",
    "CONNECTED",
    "UNREACHABLE",
    "RemotePredictor",
    "RemoteStats",
    "WorkerAddressError",
    "WorkerLostError",
    "WorkerRefusedError",
    "connect",
]

FRAME_TIMEOUT = 2.0
# In strict mode a frame that gets no result is an error, so slow frames get more time.
STRICT_FRAME_TIMEOUT = 10.0
# How long a command waits for a worker's first answer before it goes on (a refusal stops it at once).
CONNECT_WAIT = 5.0
# Two frames in flight hide one network round trip; more would only add latency.
MAX_IN_FLIGHT = 2


class WorkerRefusedError(AvatarifyError):
    """The worker does not accept this client: wrong keys, keys on one side only, or no free place."""


class WorkerLostError(EngineUnavailable):
    """In strict mode: the worker did not animate a frame (gone, or too slow)."""


class RemotePredictor:
    """An AvatarPredictor whose model runs on a worker (`avatarify worker`) at `address`.

    Frames travel as JPEG at `jpeg_quality` or raw (`encoding`); `motion` goes with every frame. Constructing one
    never blocks: the connection is made in the background and `state` tells how it goes. While the worker does
    not serve this client, `predict` raises `EngineUnavailable`. With `strict` (for rendering files) `predict`
    returns only this frame's own result and raises `WorkerLostError` otherwise; `frame_timeout` is then
    STRICT_FRAME_TIMEOUT unless given.
    """

    def __init__(
        self,
        address: str,
        keys: ClientKeys | None = None,
        encoding: str = "jpeg",
        jpeg_quality: int = DEFAULT_JPEG_QUALITY,
        motion: MotionOptions | None = None,
        frame_timeout: float | None = None,
        strict: bool = False,
        **connection_options: float,
    ) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be within 1..100, not {jpeg_quality}")
        self.address = address
        self.encoding = encoding
        self.jpeg_quality = int(jpeg_quality)
        self.motion = motion or MotionOptions()
        self.strict = strict
        self.frame_timeout = frame_timeout if frame_timeout is not None else (
            STRICT_FRAME_TIMEOUT if strict else FRAME_TIMEOUT
        )
        self._cond = threading.Condition()
        self._stats = StatsWindow()
        self._ids = itertools.count(1)
        self._avatar: np.ndarray | None = None
        self._avatar_key: str | None = None
        self._uploading: str | None = None
        self._neutral_seq = 0
        self._neutral_frame: np.ndarray | None = None
        self._calibrate_pending = True
        self._requests = Requests()
        self.output_size = FRAME_SIZE  # the side of the worker's results, as its welcome says
        self._connection = WorkerConnection(address, self, self._cond, keys, **connection_options)

    # -- the AvatarPredictor interface --------------------------------------------------------------------

    @property
    def avatar(self) -> np.ndarray | None:
        """The current avatar as the 256x256 RGB image the model sees."""
        return self._avatar

    @property
    def device_name(self) -> str:
        """Where the model runs, with the connection state when the worker is not serving this client."""
        state = self.state
        return f"remote {self.address}" + ("" if state == CONNECTED else f" ({state})")

    def set_avatar(self, image: np.ndarray) -> None:
        """Make `image` the avatar; the worker receives it only if it does not already know its content."""
        prepared = prepare_frame(image)
        key = content_key(prepared)
        with self._cond:
            self._avatar, self._avatar_key = prepared, key
            if self.state == CONNECTED:
                self._connection.push(encode_message("avatar", next(self._ids), hash=key))

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
            if self.state == CONNECTED:
                self._connection.push(self._neutral_message())

    def predict(self, frame: np.ndarray) -> np.ndarray:
        """The worker's newest animated frame (256x256 RGB uint8), never older than one returned before.

        Waits at most `frame_timeout` for this frame's result. Raises `EngineUnavailable` while the worker does
        not serve this client and before its first result; in strict mode unless this frame's own result came.
        """
        prepared = prepare_frame(frame)
        with self._cond:
            if self._avatar_key is None:
                raise RuntimeError("No avatar set; call set_avatar() first.")
            if self.state != CONNECTED:
                raise self._unavailable(self.state)
            if not self.strict and len(self._requests) >= MAX_IN_FLIGHT:
                # The link or the worker is behind: skip this frame rather than queue it up.
                self._stats.dropped += 1
                target = self._requests.oldest()
            else:
                target = self._send_frame(prepared)
            deadline = time.monotonic() + self.frame_timeout
            while self.state == CONNECTED and self._requests.waiting_for(target):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self.strict and self._requests.newest_id != target:
                why = f"no result within {self.frame_timeout:g} s" if self.state == CONNECTED else self.state
                raise self._unavailable(why)
            if self.state != CONNECTED or self._requests.newest is None:
                raise self._unavailable(self.state if self.state != CONNECTED else "no result yet")
            return self._requests.newest.copy()

    def close(self) -> None:
        """Stop the connection's thread and close its sockets."""
        self._connection.close()

    # -- state and statistics -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """ "connecting", "connected", "worker unreachable", "refused: <why>" or "closed"."""
        return self._connection.state

    @property
    def problem(self) -> str | None:
        """Why the worker refuses this client, as one line; None otherwise."""
        return self._connection.problem

    def wait_until_connected(self, timeout: float) -> bool:
        """Wait until the worker answers (True), refuses this client or `timeout` passes (False)."""
        return self._connection.wait_until_connected(timeout)

    def stats(self) -> RemoteStats:
        """Round trip, worker model time, bytes per frame (both ways), dropped and unavailable frames, uploads."""
        with self._cond:
            return self._stats.summary(self.state)

    def __enter__(self) -> RemotePredictor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- caller side (holding self._cond) -----------------------------------------------------------------

    def _unavailable(self, why: str) -> EngineUnavailable:
        if self.strict:
            return WorkerLostError(
                f"The worker at {self.address} stopped answering ({why}); nothing was written. "
                "Check that it runs and try again."
            )
        self._stats.unavailable += 1
        return EngineUnavailable(f"The worker at {self.address} is not animating ({why}).")

    def _neutral_message(self) -> list[bytes]:
        assert self._neutral_frame is not None
        payload = encode_image(self._neutral_frame, self.encoding, self.jpeg_quality)
        return encode_message("neutral", next(self._ids), payload, seq=self._neutral_seq, enc=self.encoding)

    def _send_frame(self, prepared: np.ndarray) -> int:
        calibrate = self._calibrate_pending
        if calibrate:
            self._calibrate_pending = False
            self._neutral_seq += 1
            self._neutral_frame = prepared
        motion = self.motion
        request_id = next(self._ids)
        parts = encode_message(
            "predict",
            request_id,
            encode_image(prepared, self.encoding, self.jpeg_quality),
            enc=self.encoding,
            quality=self.jpeg_quality,
            avatar=self._avatar_key,
            neutral=self._neutral_seq,
            calibrate=calibrate,
            relative=bool(motion.relative),
            adapt_movement_scale=bool(motion.adapt_movement_scale),
            motion_strength=float(motion.motion_strength),
        )
        self._requests.add(request_id, Request(time.monotonic(), parts, self._avatar_key or ""))
        if not self._connection.push(parts, request_id):
            self._requests.drop(request_id)
        return request_id

    # -- connection callbacks (its thread, holding self._cond) --------------------------------------------

    def on_connected(self, welcome: Message) -> None:
        self.output_size = welcome.header["size"]
        # A restarted worker knows nothing of this client: restore the avatar and the neutral pose.
        if self._avatar_key is not None:
            self._connection.send(encode_message("avatar", next(self._ids), hash=self._avatar_key))
        if self._neutral_frame is not None:
            self._connection.send(self._neutral_message())

    def on_reset(self) -> None:
        self._requests.clear()
        self._uploading = None

    def on_unsent(self, request_id: int) -> None:
        self._requests.drop(request_id)
        self._cond.notify_all()

    def on_heartbeat(self, now: float) -> None:
        if self._requests.expire(now, 3 * self.frame_timeout):
            self._cond.notify_all()

    def on_message(self, message: Message, size: int) -> None:
        header = message.header
        if message.type == "avatar_ok":
            if header["known"] and self._uploading == header["hash"]:
                self._uploading = None
            elif not header["known"] and header["hash"] == self._avatar_key:
                self._upload()
        elif message.type == "result":
            self._on_result(message, size)
        elif message.type == "dropped":
            if self._requests.drop(message.id):
                self._stats.dropped += 1
                self._cond.notify_all()
        elif message.type == "error":
            self._on_error(message.id, header["code"], header["message"])

    def _on_result(self, message: Message, size: int) -> None:
        if not self._requests.is_fresh(message.id):
            return
        # A result that is not a proper frame raises ProtocolError here (the connection logs and drops it); the
        # request keeps waiting for a proper one until it times out.
        frame = message.frame(self.output_size)
        request = self._requests.accept(message.id, frame)
        round_trip = (time.monotonic() - request.sent_at) * 1000.0
        self._stats.add_frame(round_trip, float(message.header["model_ms"]), len(request.parts[-1]) + size)
        self._cond.notify_all()

    def _on_error(self, request_id: int, code: str, text: str) -> None:
        if code in ("busy", "unavailable"):
            # Each heartbeat asks again (hello): the worker welcomes this client once a place is free or its model
            # is back, and the avatar and the neutral pose are restored then.
            why = (
                "is busy: it serves as many clients as it can. Close another client or try again later."
                if code == "busy"
                else f"cannot animate now: {text}"
            )
            self._connection.refuse(f"The worker at {self.address} {why}")
            return
        request = self._requests.get(request_id)
        if request is not None and code in ("need_avatar", "need_neutral") and not request.replayed:
            if request.avatar == self._avatar_key:
                # The worker lost or never had this client's state (restart, eviction): restore it, then retry.
                if code == "need_avatar":
                    self._upload()
                elif self._neutral_frame is not None:
                    self._connection.send(self._neutral_message())
                request.replayed = True
                self._connection.send(request.parts)
                return
        if code == "need_avatar":
            # Even the upload made for this request did not reach the worker: the next frame uploads again.
            self._uploading = None
        log.warning("The worker at %s could not serve a request: %s (%s)", self.address, text, code)
        self._requests.drop(request_id)
        self._cond.notify_all()

    def _upload(self) -> None:
        if self._avatar is None or self._uploading == self._avatar_key:
            return
        payload = encode_image(self._avatar, "raw")
        if self._connection.send(encode_message("avatar", next(self._ids), payload, hash=self._avatar_key, enc="raw")):
            self._uploading = self._avatar_key
            self._stats.uploads += 1
            log.info("Sent the avatar to the worker (%d bytes)", len(payload))


def connect(
    options: RemoteOptions, motion: MotionOptions | None = None, *, strict: bool = False, wait: float = 0.0
) -> RemotePredictor:
    """A RemotePredictor for `options`, connecting in the background.

    With `wait` > 0, waits that long for the worker's answer and raises `WorkerRefusedError` (one line) if it
    refuses this client; a worker that does not answer in time is logged and left to answer later.
    """
    keys = load_client_keys(options.keys_dir) if options.keys_dir is not None else None
    predictor = RemotePredictor(
        options.address, keys=keys, encoding=options.transport, jpeg_quality=options.jpeg_quality, motion=motion,
        strict=strict,
    )
    if wait > 0 and not predictor.wait_until_connected(wait):
        if predictor.state.startswith(REFUSED):
            message = predictor.problem or predictor.state
            predictor.close()
            raise WorkerRefusedError(message)
        log.warning("No answer from the worker at %s yet; it is used as soon as it answers.", options.address)
    return predictor
