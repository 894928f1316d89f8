"""The worker and its client under attack: hostile headers and images, floods, throwaway identities and fuzzing.

Everything here runs a real worker (in this process, with a fast stand-in model) and real ZeroMQ sockets on
127.0.0.1; memory-hungry cases run in a child process under a hard memory cap.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
import uuid

import cv2
import numpy as np
import pytest
import zmq

from avatarify.core.frame import MotionOptions, content_key
from avatarify.remote.client import CONNECTED, RemotePredictor
from avatarify.remote.inbox import Admission, RequestInbox
from avatarify.remote.keys import AUTHORIZED_DIR, create_keys, load_client_keys, load_server_keys
from avatarify.remote.protocol import (
    MAX_HEADER_BYTES,
    ProtocolError,
    decode_image,
    decode_message,
    encode_image,
    encode_message,
)
from avatarify.remote.backend import LocalBackend
from avatarify.remote import worker as worker_module
from avatarify.remote.worker import Worker
from bounded import GiB, run_bounded
from forged import jpeg, patch_jpeg_frame, small_progressive_jpeg_claiming

TIMEOUT = 30.0
RNG_SEED = 12


class InvertingModel:
    """A stand-in model: the result is the inverted driving frame, after `delay` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.motion = MotionOptions()
        self.device_name = "test"

    def set_avatar(self, image: np.ndarray) -> None:
        pass

    def calibrate(self) -> None:
        pass

    def set_neutral(self, frame: np.ndarray) -> None:
        pass

    def predict(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return 255 - frame

    def close(self) -> None:
        pass


@pytest.fixture
def serve():
    """Start an in-process Worker on a free loopback port; stopped after the test."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(delay: float = 0.0, **options) -> Worker:
        worker = Worker(LocalBackend(lambda: InvertingModel(delay)), bind="tcp://127.0.0.1:0", **options)
        stop = threading.Event()
        thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        deadline = time.monotonic() + TIMEOUT
        while worker.endpoint is None:
            assert thread.is_alive() and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.01)
        worker.thread = thread
        return worker

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=TIMEOUT)


def dealer(address: str, identity: bytes | None = None, keys=None) -> zmq.Socket:
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.routing_id = identity or uuid.uuid4().hex.encode()
    if keys is not None:
        keys.apply(socket)
    socket.connect(address)
    return socket


def receive(socket: zmq.Socket, timeout: float = TIMEOUT):
    assert socket.poll(timeout * 1000), "no answer"
    return decode_message(socket.recv_multipart())


def frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (256, 256, 3), dtype=np.uint8)


def predict_message(request_id: int, image: np.ndarray, avatar: str, calibrate: bool = False, **changes) -> list:
    fields = dict(enc="raw", quality=90, avatar=avatar, neutral=1, calibrate=calibrate, relative=True,
                  adapt_movement_scale=True, motion_strength=1.0)  # fmt: skip
    fields.update(changes)
    return encode_message("predict", request_id, encode_image(image, "raw"), **fields)


def served(address: str, seed: int = 99, **options) -> np.ndarray:
    """A well-behaved client's result for one frame (the worker inverts it)."""
    with RemotePredictor(address, encoding="raw", strict=True, **options) as client:
        assert client.wait_until_connected(TIMEOUT), client.state
        client.set_avatar(frame(seed))
        result = client.predict(frame(seed + 1))
        np.testing.assert_array_equal(result, 255 - frame(seed + 1))
        return result


# --- hostile headers: every one is a ProtocolError, nothing else --------------------------------------------


def header(**fields) -> bytes:
    base = {"v": 2, "type": "ping", "id": 1}
    base.update(fields)
    return json.dumps(base).encode()


PREDICT = {"type": "predict", "avatar": "ab" * 16, "neutral": 1, "calibrate": False, "relative": True,
           "adapt_movement_scale": True, "motion_strength": 1.0, "quality": 90, "enc": "raw"}  # fmt: skip
BIG = "9" * 400

HOSTILE_HEADERS = {
    "nested arrays": b"[" * (MAX_HEADER_BYTES - 1),
    "nested objects": b'{"a":' * 800,
    "nested value": b'{"v": 2, "type": "ping", "id": 1, "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    "nested after a string": b'{"v": 2, "type": "ping", "id": 1, "x": "[[[", "y": ' + b"[" * 2000 + b"}",
    "400-digit motion strength": header(**PREDICT).replace(b'"motion_strength": 1.0', f'"motion_strength": {BIG}'.encode()),
    "400-digit id": header().replace(b'"id": 1', f'"id": {BIG}'.encode()),
    "400-digit quality": header(**PREDICT).replace(b'"quality": 90', f'"quality": {BIG}'.encode()),
    "400-digit seq": b'{"v": 2, "type": "neutral_ok", "id": 1, "seq": ' + BIG.encode() + b"}",
    "400-digit version": b'{"v": ' + BIG.encode() + b', "type": "ping", "id": 1}',
    "float overflow": header(**PREDICT).replace(b'"motion_strength": 1.0', b'"motion_strength": 1e400'),
    "long float": header(**PREDICT).replace(b'"motion_strength": 1.0', b'"motion_strength": 1.' + b"0" * 3000),
    "NaN": header(**PREDICT).replace(b'"motion_strength": 1.0', b'"motion_strength": NaN'),
    "Infinity": header(**PREDICT).replace(b'"motion_strength": 1.0', b'"motion_strength": Infinity'),
    "-Infinity": b'{"v": 2, "type": "result", "id": 1, "model_ms": -Infinity, "enc": "raw"}',
    "motion strength out of range": header(**{**PREDICT, "motion_strength": 1e300}),
    "negative id": header(id=-1),
    "id beyond 64 bits": header(id=2**64),
    "id as float": header(id=1.5),
    "id as bool": header(id=True),
    "model time negative": b'{"v": 2, "type": "result", "id": 1, "model_ms": -5, "enc": "raw"}',
    "invalid UTF-8": b'{"v": 2, "type": "ping", "id": 1, "x": "\xff\xfe"}',
    "lone surrogate hash": b'{"v": 2, "type": "avatar", "id": 1, "hash": "\\ud800"}',
    "hash not hex": header(type="avatar", hash="../../etc/passwd"),
    "hash too long": header(type="avatar", hash="a" * 65),
    "error text with a newline": header(type="error", code="failed", message="line one\nFAKE: line two"),
    "error text with escapes": header(type="error", code="failed", message="\x1b[2Jcleared"),
    "error text too long": header(type="error", code="failed", message="x" * 1000),
    "error code not a word": header(type="error", code="Busy!", message="x"),
    "type not a string": header(type=["ping"]),
    "version as string": header(v="2"),
    "not an object": b"[1, 2, 3]",
    "empty": b"",
    "only whitespace": b"   ",
    "truncated": header()[:-3],
}


@pytest.mark.parametrize("raw", HOSTILE_HEADERS.values(), ids=HOSTILE_HEADERS.keys())
def test_hostile_headers_are_protocol_errors(raw):
    payload = [encode_image(frame(), "raw")] if b'"predict"' in raw or b'"result"' in raw else []
    with pytest.raises(ProtocolError) as info:
        decode_message([raw, *payload])
    assert info.value.kind and "\n" not in str(info.value) and len(str(info.value)) < 300


# --- forged JPEG headers: refused from the header bytes, before any decoding ---------------------------------


def forged_jpegs() -> dict[str, bytes]:
    small = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    good = jpeg(frame())
    png = cv2.imencode(".png", frame())[1].tobytes()
    return {
        "progressive claiming 30000x30000": small_progressive_jpeg_claiming(30000, 30000),
        "baseline claiming 30000x30000": patch_jpeg_frame(jpeg(small), 30000, 30000),
        "progressive claiming 65535x65535": small_progressive_jpeg_claiming(65535, 65535),
        "claiming 256x30000": patch_jpeg_frame(jpeg(small), 256, 30000),
        "128x128": jpeg(frame()[:128, :128]),
        "257x256": jpeg(np.zeros((256, 257, 3), np.uint8)),
        "progressive 256x256": jpeg(frame(), progressive=True),
        "arithmetic coding": patch_jpeg_frame(good, marker=0xC9),
        "lossless coding": patch_jpeg_frame(good, marker=0xC3),
        "12-bit samples": patch_jpeg_frame(good, bits=12),
        "grayscale": jpeg(cv2.cvtColor(frame(), cv2.COLOR_RGB2GRAY)),
        "zero height": patch_jpeg_frame(good, height=0),
        "PNG declared as JPEG": png,
        "header cut short": good[:40],
        "scan before frame header": b"\xff\xd8\xff\xda\x00\x02" + good[2:],
        "segment longer than the file": b"\xff\xd8\xff\xe0\xff\xff" + b"\0" * 100,
        "random bytes after SOI": b"\xff\xd8\xff" + np.random.default_rng(5).bytes(3000),
        "empty": b"",
    }


@pytest.mark.parametrize("name", forged_jpegs().keys())
def test_forged_and_wrong_jpegs_are_refused_from_the_header(name):
    with pytest.raises(ProtocolError):
        decode_image("jpeg", forged_jpegs()[name])


def test_the_agreed_jpeg_still_decodes():
    y, x = np.mgrid[0:256, 0:256]
    image = np.stack([x, y, (x + y) // 2], axis=2).astype(np.uint8)
    decoded = decode_image("jpeg", encode_image(image, "jpeg", 95))
    assert decoded.shape == (256, 256, 3) and np.abs(decoded.astype(int) - image).mean() < 2


@pytest.mark.slow
def test_a_forged_jpeg_costs_neither_memory_nor_time(tmp_path):
    """The worker decoding frames and the client decoding results both go through decode_image."""
    forged = forged_jpegs()
    path = tmp_path / "forged.bin"
    path.write_bytes(forged["progressive claiming 30000x30000"])
    assert len(path.read_bytes()) < 8000
    outcome = run_bounded(
        f"""
        from avatarify.remote.protocol import ProtocolError, decode_image
        data = open({str(path)!r}, "rb").read()
        before = peak_rss()
        started = time.perf_counter()
        try:
            decode_image("jpeg", data)
            report(outcome="decoded")
        except ProtocolError as exc:
            report(outcome="refused", reason=str(exc))
        report(decode_seconds=time.perf_counter() - started, before=before)
        """,
        address_space=3 * GiB,
    )
    assert outcome.values.get("outcome") == "refused", outcome.stderr[-2000:]
    assert "30000x30000" in outcome.values["reason"]
    assert outcome.values["decode_seconds"] < 0.05
    assert outcome.peak_rss - outcome.values["before"] < 20 * 2**20


# --- the client against a hostile worker ------------------------------------------------------------------


class HostileWorker(threading.Thread):
    """Speaks the protocol by hand: welcomes the client, then answers each frame with `bad` replies first and the
    right result last."""

    def __init__(self, bad: list[list[bytes]]) -> None:
        super().__init__(daemon=True)
        self.bad = bad
        self.router = zmq.Context.instance().socket(zmq.ROUTER)
        self.router.linger = 0
        self.address = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.router.poll(20):
                    identity, *parts = self.router.recv_multipart()
                    for reply in self.answer(decode_message(parts)):
                        self.router.send_multipart([identity, *reply])
        finally:
            self.router.close()

    def answer(self, message) -> list[list[bytes]]:
        if message.type == "hello":
            return [encode_message("welcome", message.id, size=256)]
        if message.type == "ping":
            return [encode_message("pong", message.id)]
        if message.type == "avatar":
            return [encode_message("avatar_ok", message.id, hash=message.header["hash"], known=True)]
        if message.type == "predict":
            bad = [[part.replace(b'"id": 0', f'"id": {message.id}'.encode()) for part in reply] for reply in self.bad]
            good = encode_message("result", message.id, encode_image(255 - message.frame(), "raw"), model_ms=1.0,
                                  enc="raw")  # fmt: skip
            return [*bad, good]
        return []


def hostile_replies() -> list[list[bytes]]:
    forged = forged_jpegs()
    result = b'{"v": 2, "type": "result", "id": 0, "model_ms": 1.0, "enc": "jpeg"}'
    replies = [[raw] for raw in HOSTILE_HEADERS.values()]
    replies += [[result, forged[name]] for name in ("progressive claiming 30000x30000", "128x128", "PNG declared as JPEG")]
    replies += [
        [b'{"v": 2, "type": "result", "id": 0, "model_ms": 1.0, "enc": "raw"}', b"\0" * 1000],
        [b'{"v": 2, "type": "result", "id": 0, "model_ms": 1.0, "enc": "pickle"}', b"\x80\x04."],
        [b'{"v": 2, "type": "result", "id": 0, "model_ms": 1.0, "enc": "raw"}', b"", b""],
    ]
    return replies


def test_the_client_survives_a_hostile_worker():
    worker = HostileWorker(hostile_replies())
    worker.start()
    try:
        with RemotePredictor(worker.address, encoding="raw", strict=True) as client:
            assert client.wait_until_connected(TIMEOUT), client.state
            client.set_avatar(frame(1))
            for seed in (2, 3):
                # Every bad reply is dropped; the right result that follows each batch of them is used.
                np.testing.assert_array_equal(client.predict(frame(seed)), 255 - frame(seed))
                assert client.state == CONNECTED
    finally:
        worker.stop.set()
        worker.join(timeout=TIMEOUT)


# --- the worker against floods, throwaway identities and fuzzing -----------------------------------------


def upload_avatar(socket: zmq.Socket, image: np.ndarray) -> str:
    key = content_key(image)
    socket.send_multipart(encode_message("avatar", 1, encode_image(image, "raw"), hash=key, enc="raw"))
    assert receive(socket).type == "avatar_ok"
    return key


def test_a_flooding_client_cannot_get_other_clients_frames_rejected(serve):
    worker = serve(delay=0.05)
    flood = dealer(worker.endpoint)
    flood_avatar = upload_avatar(flood, frame(10))
    stop = threading.Event()

    def flood_requests() -> None:
        # Cheap requests as fast as they go, and a frame now and then: far more than the model can take.
        for request_id in range(2, 1_000_000):
            if stop.is_set():
                return
            if request_id % 20:
                flood.send_multipart(encode_message("avatar", request_id, hash=flood_avatar))
            else:
                flood.send_multipart(predict_message(request_id, frame(11), flood_avatar, calibrate=request_id == 20))
            time.sleep(0.0002)

    flooding = threading.Thread(target=flood_requests, daemon=True)
    flooding.start()
    try:
        time.sleep(0.3)  # the flood is under way
        with RemotePredictor(worker.endpoint, encoding="raw", strict=True) as good:
            assert good.wait_until_connected(TIMEOUT), good.state
            good.set_avatar(frame(20))
            results = [good.predict(frame(21 + i)) for i in range(10)]
        for i, result in enumerate(results):
            np.testing.assert_array_equal(result, 255 - frame(21 + i))
    finally:
        stop.set()
        flooding.join(timeout=TIMEOUT)
    # What went beyond the flood's own quota was refused to it alone; its frames replaced each other.
    answers = []
    while flood.poll(200):
        message = decode_message(flood.recv_multipart())
        answers.append(message.header.get("message") if message.type == "error" else message.type)
    flood.close()
    assert answers.count("the queue is full") > 0 and answers.count("dropped") > 0
    assert worker.thread.is_alive()


def test_greetings_from_throwaway_identities_take_no_place(serve):
    worker = serve(client_timeout=30.0)
    lingering = []
    for i in range(40):
        socket = dealer(worker.endpoint)
        socket.send_multipart(encode_message("hello", 0))
        assert receive(socket).type == "welcome"
        if i % 2:
            lingering.append(socket)  # stays connected, silent
        else:
            socket.close()
    served(worker.endpoint)
    for socket in lingering:
        socket.close()


def test_a_place_is_free_once_its_client_disconnects(serve, monkeypatch):
    monkeypatch.setattr(worker_module, "RECONNECT_GRACE", 0.3)
    worker = serve(client_timeout=60.0, max_clients=4, max_clients_per_peer=4)
    for _ in range(4):
        socket = dealer(worker.endpoint)
        socket.send_multipart(encode_message("avatar", 1, hash="ab"))  # a request: this takes a place
        assert receive(socket).type == "avatar_ok"
        socket.close()  # gone without a farewell
    started = time.monotonic()
    deadline = started + TIMEOUT
    while True:
        probe = dealer(worker.endpoint)
        probe.send_multipart(encode_message("hello", 0))
        answer = receive(probe)
        probe.close()
        if answer.type == "welcome":
            break
        assert answer.header["code"] == "busy" and time.monotonic() < deadline
        time.sleep(0.1)
    # Freed within the reconnect grace and a poll, far sooner than the client timeout.
    assert time.monotonic() - started < 10
    served(worker.endpoint)


def test_places_are_limited_per_address(serve):
    worker = serve(max_clients=8, max_clients_per_peer=2)
    holders = [dealer(worker.endpoint) for _ in range(2)]
    for socket in holders:
        socket.send_multipart(encode_message("avatar", 1, hash="ab"))
        assert receive(socket).type == "avatar_ok"
    third = dealer(worker.endpoint)
    for kind in ("hello", "avatar"):
        third.send_multipart(encode_message(kind, 2, **({"hash": "ab"} if kind == "avatar" else {})))
        answer = receive(third)
        assert (answer.type, answer.header["code"]) == ("error", "busy")
    holders.pop().send_multipart(encode_message("bye", 0))  # a client that leaves frees its place at once
    deadline = time.monotonic() + TIMEOUT
    while True:
        third.send_multipart(encode_message("hello", 3))
        if receive(third).type == "welcome":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for socket in (*holders, third):
        socket.close()


def test_places_are_limited_per_key(serve, tmp_path):
    create_keys(tmp_path / "worker")
    create_keys(tmp_path / "other")
    other = load_client_keys(tmp_path / "other")
    (tmp_path / "worker" / AUTHORIZED_DIR / "other.key").write_bytes(
        (tmp_path / "other" / "client.key").read_bytes()
    )
    server_keys = load_server_keys(tmp_path / "worker")
    worker = serve(keys=server_keys, max_clients=8, max_clients_per_peer=1)
    mine = load_client_keys(tmp_path / "worker")
    theirs = dataclasses.replace(other, server_public=mine.server_public)
    first = dealer(worker.endpoint, keys=mine)
    first.send_multipart(encode_message("avatar", 1, hash="ab"))
    assert receive(first).type == "avatar_ok"
    second = dealer(worker.endpoint, keys=mine)
    second.send_multipart(encode_message("avatar", 1, hash="ab"))
    assert receive(second).header["code"] == "busy"  # same key, no place left for it
    stranger = dealer(worker.endpoint, keys=theirs)
    stranger.send_multipart(encode_message("avatar", 1, hash="ab"))
    assert receive(stranger).type == "avatar_ok"  # another key has its own places
    for socket in (first, second, stranger):
        socket.close()


def test_bad_messages_are_logged_at_most_once_a_second_per_kind(serve, caplog):
    worker = serve()
    rogue = dealer(worker.endpoint)
    kinds = {"json depth": b"[" * 1000, "json number": header(id=int(BIG)), "message type": header(type="reboot")}
    caplog.set_level(logging.WARNING, logger="avatarify.remote.worker")
    started = time.monotonic()
    for _ in range(300):
        for raw in kinds.values():
            rogue.send_multipart([raw])
    rogue.send_multipart(encode_message("ping", 7))
    while receive(rogue).type != "pong":
        pass
    seconds = time.monotonic() - started
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Dropped a message")]
    assert 3 <= len(lines) <= 3 * (int(seconds) + 2), lines
    assert worker.counters.rejected_messages >= 900
    rogue.close()


def mutations(rng: random.Random, valid: list[list[bytes]], count: int):
    """Random and mutated messages: bit flips, cuts, splices, hostile values, wrong parts, random bytes."""
    hostile = list(HOSTILE_HEADERS.values())
    jpegs = list(forged_jpegs().values())
    for _ in range(count):
        parts = [bytearray(part) for part in rng.choice(valid)]
        choice = rng.random()
        target = parts[rng.randrange(len(parts))]
        if choice < 0.25 and target:
            for _ in range(rng.randint(1, 8)):
                target[rng.randrange(len(target))] ^= 1 << rng.randrange(8)
        elif choice < 0.4 and target:
            del target[rng.randrange(len(target)):]
        elif choice < 0.55:
            parts[0] = bytearray(rng.choice(hostile))
        elif choice < 0.65:
            parts = [parts[0], bytearray(rng.choice(jpegs))]
            parts[0] = parts[0].replace(b'"enc":"raw"', b'"enc":"jpeg"')
        elif choice < 0.75:
            parts = [bytearray(rng.randbytes(rng.randrange(64))) for _ in range(rng.randint(1, 4))]
        elif choice < 0.85:
            key, value = rng.choice([b'"id":', b'"seq":', b'"quality":', b'"neutral":', b'"motion_strength":']), \
                rng.choice([b"-1", b"1e999", b"NaN", b'"x"', b"[[[[1]]]]", b"true", b"null", BIG.encode()])
            parts[0] = parts[0].replace(key, key + value + b",\"_\":")
        else:
            parts.append(bytearray(rng.randbytes(rng.randrange(16))))
        yield [bytes(part) for part in parts]


@pytest.mark.slow
def test_fuzzed_messages_never_stop_the_worker(serve):
    # Places are plenty here (the fuzzing sockets all come from one address): this is about messages.
    worker = serve(client_timeout=5.0, max_clients_per_peer=8)
    avatar = frame(40)
    key = content_key(avatar)
    valid = [
        encode_message("hello", 1), encode_message("ping", 2), encode_message("avatar", 3, hash=key),
        encode_message("avatar", 4, encode_image(avatar, "raw"), hash=key, enc="raw"),
        encode_message("neutral", 5, encode_image(frame(41), "raw"), seq=1, enc="raw"),
        predict_message(6, frame(42), key), predict_message(7, frame(43), key, calibrate=True),
        encode_message("predict", 8, encode_image(frame(44), "jpeg"), enc="jpeg", quality=80, avatar=key, neutral=1,
                       calibrate=False, relative=False, adapt_movement_scale=True, motion_strength=0.5),
        encode_message("bye", 9),
    ]  # fmt: skip
    rng = random.Random(RNG_SEED)
    sockets = [dealer(worker.endpoint) for _ in range(6)]
    started = time.monotonic()
    sent = 0
    for parts in mutations(rng, valid, 3000):
        if time.monotonic() - started > 60:  # bounded, however slow the machine
            break
        rng.choice(sockets).send_multipart(parts)
        sent += 1
        for socket in sockets:  # keep the sockets drained, as live peers would be
            while socket.poll(0):
                socket.recv_multipart()
    assert sent >= 1000
    served(worker.endpoint)
    assert worker.thread.is_alive()
    assert worker.counters.rejected_messages > sent // 4
    for socket in sockets:
        socket.close()


def test_fuzzed_headers_only_ever_raise_protocol_errors():
    rng = random.Random(RNG_SEED + 1)
    valid = [encode_message("result", 1, encode_image(frame(), "raw"), model_ms=2.5, enc="raw"),
             encode_message("error", 2, code="busy", message="full"), encode_message("avatar_ok", 3, hash="ab", known=True),
             predict_message(4, frame(), "ab" * 16)]  # fmt: skip
    for parts in mutations(rng, valid, 3000):
        try:
            decode_message(parts)
        except ProtocolError:
            pass


# --- bookkeeping ------------------------------------------------------------------------------------------


def test_inbox_keeps_each_clients_newest_frame_within_its_quota():
    inbox = RequestInbox(quota=3)
    frames = [decode_message(predict_message(i, frame(), "ab", calibrate=i == 1)) for i in range(1, 6)]
    assert inbox.put(b"a", frames[0]) == (True, None)  # a calibration frame stays
    assert inbox.put(b"a", frames[1]) == (True, None)
    assert inbox.put(b"a", frames[2]) == (True, frames[1])  # replaces the waiting plain frame
    avatar = decode_message(encode_message("avatar", 9, hash="ab"))
    assert inbox.put(b"a", avatar) == (True, None)
    assert inbox.put(b"a", avatar) == (False, None)  # quota used up
    assert inbox.put(b"b", frames[3]) == (True, None)  # another client is not affected
    batch, forgotten, closed = inbox.take(timeout=0)
    assert [(identity, m.id) for identity, m in batch] == [(b"a", 1), (b"b", 4), (b"a", 3), (b"a", 9)]
    assert (forgotten, closed) == ([], False)
    inbox.put(b"a", frames[4])
    assert inbox.forget(b"a") == 1
    assert inbox.take(timeout=0) == ([], [b"a"], False)


def test_admission_takes_places_only_for_requests_and_limits_peers():
    now = [0.0]
    admission = Admission(max_clients=3, per_peer=2, clock=lambda: now[0])
    assert admission.check(b"x", "address 1", takes_place=False) is None and b"x" not in admission
    assert admission.check(b"a", "address 1", takes_place=True) is None
    assert admission.check(b"b", "address 1", takes_place=True) is None
    assert admission.check(b"c", "address 1", takes_place=True)[0] == "busy"
    assert admission.check(b"c", "address 2", takes_place=True) is None
    assert admission.check(b"d", "address 3", takes_place=False)[0] == "busy"
    assert admission.check(b"a", "address 2", takes_place=True)[0] == "rejected"  # another peer's identity
    now[0] = 5.0
    assert admission.check(b"a", "address 1", takes_place=False) is None
    assert admission.silent_since(1.0) == [b"b", b"c"]
    assert admission.remove(b"b") and not admission.remove(b"b")
    assert len(admission) == 2


def test_inbox_holds_eight_requests_per_client_by_default():
    inbox = RequestInbox()
    avatar = decode_message(encode_message("avatar", 9, hash="ab"))
    assert [inbox.put(b"a", avatar) for _ in range(9)] == [(True, None)] * 8 + [(False, None)]
    assert inbox.put(b"b", avatar) == (True, None)
    assert inbox.waiting() == 9


def test_inbox_wakes_the_model_thread_for_work_for_a_client_gone_and_for_good_when_closed():
    inbox = RequestInbox()
    assert inbox.take(timeout=0) == ([], [], False)
    avatar = decode_message(encode_message("avatar", 9, hash="ab"))
    for wake, expected in (
        (lambda: inbox.put(b"a", avatar), ([(b"a", avatar)], [], False)),
        (lambda: inbox.forget(b"gone"), ([], [b"gone"], False)),
        (inbox.close, ([], [], True)),
    ):
        taken = []
        waiter = threading.Thread(target=lambda: taken.append(inbox.take(timeout=30)), daemon=True)
        waiter.start()
        wake()
        waiter.join(timeout=5)
        assert taken == [expected]
    assert inbox.take(timeout=None) == ([], [], True)  # closed: no more waiting


def test_inbox_hands_a_one_at_a_time_backend_each_free_clients_oldest_request():
    inbox = RequestInbox()
    plain, calibration, newer = (decode_message(predict_message(i, frame(), "ab", calibrate=i == 2)) for i in (1, 2, 3))
    avatar = decode_message(encode_message("avatar", 4, hash="ab"))
    inbox.put(b"busy", avatar)
    inbox.put(b"a", calibration)
    inbox.put(b"a", avatar)  # no frame behind the calibration frame: it is not stale
    inbox.put(b"b", calibration)
    inbox.put(b"b", newer)  # a newer frame behind it: stale, though it still sets the neutral pose
    inbox.put(b"c", plain)
    inbox.forget(b"gone")
    assert inbox.take_ready(busy={b"busy"}) == (
        [(b"a", calibration, False), (b"b", calibration, True), (b"c", plain, False)],
        [b"gone"],
    )
    assert inbox.waiting() == 3
    assert inbox.take_ready(busy=set()) == ([(b"busy", avatar, False), (b"a", avatar, False), (b"b", newer, False)], [])
    assert inbox.take_ready(busy=set()) == ([], []) and inbox.waiting() == 0


def test_admission_says_why_a_client_is_turned_away():
    now = [0.0]
    admission = Admission(max_clients=2, per_peer=1, clock=lambda: now[0])
    assert admission.check(b"a", "address 1", takes_place=True) is None
    assert admission.check(b"b", "address 1", takes_place=True) == (
        "busy", "the worker already serves 1 clients for this key or address")
    assert admission.check(b"a", "address 2", takes_place=False) == (
        "rejected", "this client identity is in use by another peer")
    now[0] = 2.0
    assert admission.check(b"b", "address 2", takes_place=True) is None
    assert admission.check(b"c", "address 3", takes_place=False) == ("busy", "the worker is full (2 clients)")
    assert admission.identities() == [b"a", b"b"] and len(admission) == 2
    # Heard from exactly at the deadline is not silent.
    assert admission.silent_since(2.0) == [b"a"]
    assert admission.silent_since(0.0) == []
