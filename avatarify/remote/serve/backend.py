"""The worker's model on a Ray Serve deployment, as the front end sees it: sessions here, the model on the replicas.

The front end keeps what each session needs (its avatar image, by hash, and its neutral pose, as the replica
computed it) and sends it along with every frame, so that any replica serves any session. Each client has at most
one request on its way; its newer frames wait in the inbox, where a newer one replaces an older one, so a slow
deployment costs frames, not delay. The replicas are reached through a link process, the Ray driver (`bridge`),
which this backend starts, watches and starts again when it ends: while there is no working link, clients are told
why and keep asking, and come back by themselves once it works again.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import zmq

from ...core.frame import FRAME_SIZE
from ...core.ratelimit import RateLimitedLog
from ...model.loader import ModelOptions
from ..avatars import AvatarStore
from ..backend import FrontEnd
from ..protocol import Message, ProtocolError, encode_message
from .figures import ServingFigures
from .link import LinkError, pack, unpack
from .options import RayOptions

log = logging.getLogger(__name__)

# A link that sent nothing for this long is stuck (it reports every second).
LINK_SILENCE = 30.0
# After a link ends, the next starts this much later, doubling up to the maximum while they keep failing.
RESTART_DELAY = 2.0
MAX_RESTART_DELAY = 30.0
# A request not answered in this time is given up (the link gives up on the replicas before that).
FLIGHT_TIMEOUT = 25.0
LINK_STOP_TIMEOUT = 15.0
# Avatars the link is known to hold, at most (the link itself keeps more).
LINKED_AVATARS = 128


@dataclass
class _Session:
    """What a replica needs of a client besides its frame: the neutral pose (the client's number and the pose)."""

    neutral: int | None = None
    pose: bytes | None = None


@dataclass
class _Flight:
    """A client's request on its way to the replicas."""

    identity: bytes
    message: Message
    sent_at: float


class RayBackend:
    """Forwards the front end's requests to a Ray Serve deployment of `model` run as `options` say."""

    output_size = FRAME_SIZE  # FOMM, the one engine served in batches

    def __init__(self, options: RayOptions, model: ModelOptions) -> None:
        self.options = options
        self.model = model
        self._front: FrontEnd | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="avatarify-ray-"))  # only this user may enter it
        self._socket: zmq.Socket | None = None
        self._process: subprocess.Popen | None = None
        self._name = b""
        self._state: dict[str, Any] = {}
        self._heard_at = 0.0
        self._waiting = f"starting the link to {options.where}"
        self._restart_at = 0.0
        self._delay = RESTART_DELAY
        self._restarts = 0
        self._ids = itertools.count(1)
        self._sessions: dict[bytes, _Session] = {}
        self._flights: dict[int, _Flight] = {}
        self._busy: set[bytes] = set()
        self._avatars = AvatarStore()
        self._linked_avatars: set[str] = set()
        self._figures = ServingFigures()
        self._bad = RateLimitedLog(log, interval=5.0)

    @property
    def problem(self) -> str | None:
        if self._state.get("ready"):
            return None
        return f"the model on {self.options.where} is not ready: {self._state.get('problem') or self._waiting}"

    def open(self, front: FrontEnd) -> list[zmq.Socket]:
        self._front = front
        self._socket = front.context.socket(zmq.ROUTER)
        self._socket.linger = 0
        # Sending to a link that is not (or no longer) connected fails at once rather than queueing.
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._socket.bind(f"ipc://{self._folder / 'link'}")
        return [self._socket]

    def on_ready(self, socket: zmq.Socket) -> None:
        while True:
            try:
                name, *frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if name != self._name:
                continue  # an earlier link, on its way out
            try:
                header, parts = unpack(frames)
                self._on_link_message(header, parts)
            except (LinkError, KeyError, IndexError, TypeError, ValueError) as exc:
                self._bad.warning("link", "Dropped a message from the link to Ray: %s", exc)

    def tick(self) -> None:
        assert self._front is not None
        self._watch_link()
        taken, forgotten = self._front.inbox.take_ready(self._busy)
        for identity in forgotten:
            self._sessions.pop(identity, None)
            self._figures.forget(identity)
        for identity, message, stale in taken:
            self._dispatch(identity, message, stale)
        now = time.monotonic()
        for request_id, flight in list(self._flights.items()):
            if now - flight.sent_at > FLIGHT_TIMEOUT:
                self._land(request_id)
                self._answer(flight.identity, encode_message("dropped", flight.message.id))

    def status(self) -> dict[str, Any]:
        return {
            "backend": "ray",
            "address": self.options.where,
            "deployment": self._state.get("deployment"),
            "ready": bool(self._state.get("ready")),
            "in_flight": len(self._flights),
            "sessions": len(self._sessions),
            "link_restarts": self._restarts,
            **self._figures.report(self._state.get("replicas") or []),
        }

    def summary(self) -> str | None:
        return self._figures.summary()

    def close(self) -> None:
        self._stop_link()
        if self._socket is not None:
            self._socket.close(linger=0)
        shutil.rmtree(self._folder, ignore_errors=True)

    # -- the link process ---------------------------------------------------------------------------------

    def _watch_link(self) -> None:
        now = time.monotonic()
        if self._process is None:
            if now >= self._restart_at:
                self._start_link()
            return
        code = self._process.poll()
        if code is not None or now - self._heard_at > LINK_SILENCE:
            why = self._state.get("problem") or (
                f"the link to Ray ended (exit status {code})" if code is not None else "the link to Ray stopped answering"
            )
            self._lose_link(why)

    def _start_link(self) -> None:
        self._name = uuid.uuid4().hex.encode()
        settings = {**{key: value for key, value in asdict(self.options).items()},
                    "model": {key: None if value is None else str(value) for key, value in asdict(self.model).items()}}  # fmt: skip
        assert self._socket is not None
        endpoint = self._socket.get(zmq.LAST_ENDPOINT).decode()
        command = [sys.executable, "-m", "avatarify.remote.serve.bridge", endpoint, self._name.decode(), json.dumps(settings)]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        self._heard_at = time.monotonic()
        log.info("Started the link to %s (process %d)", self.options.where, self._process.pid)

    def _lose_link(self, why: str) -> None:
        """The link ended or hangs: drop what it had, tell clients why, and start another one later."""
        self._stop_link()
        for request_id, flight in list(self._flights.items()):
            self._land(request_id)
            self._answer(flight.identity, encode_message("dropped", flight.message.id))
        self._linked_avatars.clear()
        self._state = {}
        self._restarts += 1
        self._waiting = f"{why}; trying again in {self._delay:g} s"
        log.warning("The model on %s is unavailable: %s", self.options.where, self._waiting)
        self._restart_at = time.monotonic() + self._delay
        self._delay = min(2 * self._delay, MAX_RESTART_DELAY)

    def _stop_link(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Asked first: a link that stops by itself takes an embedded Ray down with it, quietly.
        asked = self._to_link(pack({"op": "stop"}))
        for stop in (process.terminate, process.kill):
            try:
                process.wait(timeout=LINK_STOP_TIMEOUT if asked else 0.1)
                return
            except subprocess.TimeoutExpired:
                stop()
                asked = True
        process.wait()

    def _on_link_message(self, header: dict[str, Any], parts: list[bytes]) -> None:
        self._heard_at = time.monotonic()
        op = header["op"]
        if op == "state":
            if header["ready"] and not self._state.get("ready"):
                log.info("The model on %s is ready", self.options.where)
                self._delay = RESTART_DELAY
            self._state = header
            return
        flight = self._land(int(header["id"]))
        if flight is None or flight.identity not in self._sessions:
            return  # given up already, or the client has gone
        if op == "result":
            self._on_result(flight, header, parts)
        elif op == "pose":
            self._on_pose(flight, parts[0])
        else:
            self._on_error(flight, header["code"], str(header.get("message", "")))

    # -- requests ---------------------------------------------------------------------------------------------

    def _dispatch(self, identity: bytes, message: Message, stale: bool) -> None:
        assert self._front is not None
        if identity not in self._sessions:
            self._sessions[identity] = _Session()
            self._front.counters.clients += 1
        problem = self.problem
        try:
            if problem is not None:
                self._answer(identity, encode_message("error", message.id, code="unavailable", message=problem[:200]))
            elif message.type == "avatar":
                key = self._avatars.receive(message)
                self._front.counters.avatar_uploads = self._avatars.uploads
                known = self._avatars.get(key) is not None
                self._answer(identity, encode_message("avatar_ok", message.id, hash=key, known=known))
            elif message.type == "neutral" or (stale and message.header["calibrate"]):
                # A calibration frame made stale by a newer one still sets the neutral pose.
                self._forward(identity, message, {"op": "pose", "enc": message.header["enc"]}, [_payload(message)])
            elif stale:
                self._front.counters.dropped_frames += 1
                self._answer(identity, encode_message("dropped", message.id))
            else:
                self._predict(identity, message)
        except ProtocolError as exc:
            self._answer(identity, self._front.reject(identity, str(exc), message.id, exc.kind))

    def _predict(self, identity: bytes, message: Message) -> None:
        header = message.header
        key = header["avatar"]
        image = self._avatars.get(key)
        if image is None:
            self._answer(identity, encode_message("error", message.id, code="need_avatar", message="avatar not uploaded"))
            return
        session = self._sessions[identity]
        if not header["calibrate"] and (session.neutral != header["neutral"] or session.pose is None):
            self._answer(identity, encode_message("error", message.id, code="need_neutral", message="neutral pose not sent"))
            return
        if key not in self._linked_avatars and self._to_link(pack({"op": "avatar", "key": key}, image.tobytes())):
            if len(self._linked_avatars) >= LINKED_AVATARS:
                # Forgetting costs only sending an avatar the link may still have: the set stays bounded.
                self._linked_avatars.clear()
            self._linked_avatars.add(key)
        fields = {"op": "predict", "avatar": key, "enc": header["enc"], "quality": header["quality"],
                  "motion": [header["relative"], header["adapt_movement_scale"], float(header["motion_strength"])]}  # fmt: skip
        pose = b"" if header["calibrate"] else session.pose
        self._forward(identity, message, fields, [_payload(message), pose or b""])

    def _forward(self, identity: bytes, message: Message, fields: dict[str, Any], parts: list[bytes]) -> None:
        request_id = next(self._ids)
        if not self._to_link(pack({**fields, "id": request_id}, *parts)):
            self._answer(identity, encode_message("dropped", message.id))
            return
        self._flights[request_id] = _Flight(identity, message, time.monotonic())
        self._busy.add(identity)

    def _to_link(self, frames: list[bytes]) -> bool:
        assert self._socket is not None
        try:
            self._socket.send_multipart([self._name, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # not connected (yet, or any more), or not reading
            self._bad.warning("link send", "Could not hand a request to the link to Ray: %s", exc)
            return False
        return True

    def _land(self, request_id: int) -> _Flight | None:
        flight = self._flights.pop(request_id, None)
        if flight is not None:
            self._busy.discard(flight.identity)
        return flight

    def _on_result(self, flight: _Flight, header: dict[str, Any], parts: list[bytes]) -> None:
        assert self._front is not None
        message = flight.message
        if message.header["calibrate"]:
            session = self._sessions[flight.identity]
            session.neutral, session.pose = message.header["neutral"], parts[1]
        self._front.counters.frames += 1
        self._figures.add(flight.identity, header, (time.monotonic() - flight.sent_at) * 1000.0)
        model_ms = sum(float(ms) for ms in (header.get("stage_ms") or {}).values())
        reply = encode_message("result", message.id, parts[0], model_ms=round(model_ms, 3), enc=message.header["enc"])
        self._answer(flight.identity, reply)

    def _on_pose(self, flight: _Flight, pose: bytes) -> None:
        assert self._front is not None
        message = flight.message
        session = self._sessions[flight.identity]
        session.pose = pose
        if message.type == "neutral":
            session.neutral = message.header["seq"]
            self._answer(flight.identity, encode_message("neutral_ok", message.id, seq=session.neutral))
        else:
            session.neutral = message.header["neutral"]
            self._front.counters.dropped_frames += 1
            self._answer(flight.identity, encode_message("dropped", message.id))

    def _on_error(self, flight: _Flight, code: str, text: str) -> None:
        assert self._front is not None
        identity, message = flight.identity, flight.message
        if code == "lost":
            # The replica went away with the frame: a gap, and the session goes on with its next frame.
            self._answer(identity, encode_message("dropped", message.id))
        elif code == "need_avatar":
            # The link lost the avatar (a new link): the client is asked for it, and it comes back through here.
            self._linked_avatars.discard(message.header.get("avatar", ""))
            self._answer(identity, encode_message("error", message.id, code="need_avatar", message="avatar not uploaded"))
        elif code == "rejected":
            self._answer(identity, self._front.reject(identity, text, message.id, "frame"))
        else:
            self._bad.warning("failed", "A request of client %s failed on the replicas: %s", identity.hex()[:40], text)
            self._answer(identity, encode_message("error", message.id, code="failed", message="the worker failed; see its log"))

    def _answer(self, identity: bytes, parts: list[bytes]) -> None:
        assert self._front is not None
        self._front.send(identity, parts)


def _payload(message: Message) -> bytes:
    if message.payload is None:
        raise ProtocolError(f"{message.type} message has no image", "payload presence")
    return message.payload
