"""The remote worker end to end: a worker process serving real clients over real sockets on 127.0.0.1."""
from __future__ import annotations

import argparse
import dataclasses
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zmq

from avatarify.cli.options import add_model_arguments, remote_options
from avatarify.core.errors import AvatarifyError, EngineUnavailable
from avatarify.core.frame import MotionOptions
from avatarify.core.frame import prepare_frame
from avatarify.model.predictor import Predictor
from avatarify.remote.client import CONNECTED, UNREACHABLE, RemotePredictor, WorkerLostError, WorkerRefusedError
from avatarify.remote.client import connect as connect_remote
from avatarify.remote.options import RemoteOptions
from avatarify.remote.connection import HEARTBEAT_INTERVAL
from avatarify.remote.keys import create_keys, load_client_keys
from avatarify.remote.protocol import decode_image, decode_message, encode_image, encode_message
from avatarify.remote.inbox import CLIENT_QUOTA
from avatarify.remote.backend import LocalBackend
from avatarify.remote.worker import MAX_CLIENTS, Worker

pytestmark = pytest.mark.worker
REPO_ROOT = Path(__file__).resolve().parents[1]
# Generous limits that only guard against hangs; nothing here measures speed.
START_TIMEOUT = 120.0
LOG_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class WorkerProcess:
    """`python -m avatarify worker` on a loopback port, its output collected in a log file."""

    def __init__(self, golden_dir: Path, port: int, log_path: Path, *options: str) -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.log_path = log_path
        command = [
            sys.executable, "-m", "avatarify", "worker", "--bind", self.address, "--device", "cpu",
            "--checkpoint", str(golden_dir / "checkpoint.pth.tar"), "--config", str(golden_dir / "config.yaml"),
            *options,
        ]  # fmt: skip
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, count: int = 1, timeout: float = LOG_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while self.log().count(text) < count:
            assert self.process.poll() is None, f"worker exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"no {text!r} x{count} in the worker log:\n{self.log()}"
            time.sleep(0.05)
        return self.log()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def start_worker(golden_dir, tmp_path):
    """Start worker processes (port, extra options); all are killed after the test."""
    started: list[WorkerProcess] = []

    def start(port: int | None = None, *options: str) -> WorkerProcess:
        port = port or free_port()
        worker = WorkerProcess(golden_dir, port, tmp_path / f"worker-{port}.log", *options)
        started.append(worker)
        worker.wait_for_log("Worker serving on", timeout=START_TIMEOUT)
        return worker

    yield start
    for worker in started:
        worker.kill()


@pytest.fixture(scope="module")
def shared_worker(golden_dir, tmp_path_factory):
    """One worker for the tests that do not stop it; it forgets silent clients after 2 s."""
    port = free_port()
    worker = WorkerProcess(golden_dir, port, tmp_path_factory.mktemp("worker") / "worker.log", "--client-timeout", "2")
    worker.wait_for_log("Worker serving on", timeout=START_TIMEOUT)
    yield worker
    worker.kill()


def dealer(address: str) -> zmq.Socket:
    """A bare DEALER socket named as clients name themselves."""
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.routing_id = uuid.uuid4().hex.encode()
    socket.connect(address)
    return socket


def connect(worker: WorkerProcess, **options) -> RemotePredictor:
    options.setdefault("encoding", "raw")
    predictor = RemotePredictor(worker.address, **options)
    assert predictor.wait_until_connected(START_TIMEOUT), predictor.state
    return predictor


def refused(address: str, keys) -> None:
    """Connect with `keys` and wait: WorkerRefusedError when the worker refuses, as the commands report it."""
    with RemotePredictor(address, keys=keys) as predictor:
        if not predictor.wait_until_connected(START_TIMEOUT) and predictor.problem:
            raise WorkerRefusedError(predictor.problem)


def animate(predictor, avatar: np.ndarray, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The same calls a session makes: poses, controls and neutral poses changing along the way."""
    predictor.set_avatar(avatar)
    outputs = [predictor.predict(frame) for frame in frames[:3]]
    predictor.motion = MotionOptions(relative=False)
    outputs.append(predictor.predict(frames[3]))
    predictor.motion = MotionOptions(motion_strength=0.5)
    outputs.append(predictor.predict(frames[4]))
    predictor.set_neutral(frames[1])
    outputs.append(predictor.predict(frames[5]))
    predictor.calibrate()
    predictor.motion = MotionOptions(adapt_movement_scale=False)
    outputs += [predictor.predict(frames[2]), predictor.predict(frames[4])]
    return outputs


def test_raw_round_trip_equals_the_local_predictor(shared_worker, small_model, frames, avatars):
    local = animate(Predictor(small_model), avatars["mona"], frames)
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(["--worker", shared_worker.address, "--worker-transport", "raw"])
    remote = connect_remote(remote_options(args), wait=START_TIMEOUT)
    assert remote.state == CONNECTED
    try:
        outputs = animate(remote, avatars["mona"], frames)
        stats = remote.stats()
    finally:
        remote.close()
    assert len(outputs) == len(local)
    for mine, theirs in zip(outputs, local, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert stats.frames == len(local) and stats.unavailable_frames == 0
    assert stats.bytes_per_frame == 2 * 256 * 256 * 3
    assert stats.round_trip_ms >= stats.worker_ms > 0


class JpegLinkPredictor(Predictor):
    """The local predictor behind the JPEG coding the remote path applies to frames, both ways."""

    quality = 90

    def jpeg(self, frame: np.ndarray) -> np.ndarray:
        return decode_image("jpeg", encode_image(prepare_frame(frame), "jpeg", self.quality))

    def set_neutral(self, frame: np.ndarray) -> None:
        super().set_neutral(self.jpeg(frame))

    def predict(self, frame: np.ndarray) -> np.ndarray:
        return self.jpeg(super().predict(self.jpeg(frame)))


def test_jpeg_round_trip_differs_from_local_only_by_jpeg(shared_worker, small_model, frames, avatars):
    local = animate(Predictor(small_model), avatars["obama"], frames)
    through_jpeg = animate(JpegLinkPredictor(small_model), avatars["obama"], frames)
    with connect(shared_worker, encoding="jpeg", jpeg_quality=JpegLinkPredictor.quality) as remote:
        outputs = animate(remote, avatars["obama"], frames)
        stats = remote.stats()
    for mine, theirs, exact in zip(outputs, through_jpeg, local, strict=True):
        np.testing.assert_array_equal(mine, theirs)
        # The small test model magnifies the JPEG noise of its input; the full model far less so.
        assert 0 < np.abs(mine.astype(int) - exact).mean() < 16
    assert stats.bytes_per_frame < 256 * 256 * 3 / 2


def test_bad_worker_options_are_one_line_errors():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    for options, message in (
        (["--worker", "127.0.0.1:5557"], "tcp://HOST:PORT"),
        (["--worker", "tcp://127.0.0.1:abc"], "tcp://HOST:PORT"),
        (["--worker", "tcp://127.0.0.1:99999"], "tcp://HOST:PORT"),
        (["--worker", "tcp://127.0.0.1:5557", "--worker-jpeg-quality", "0"], "from 1 to 100"),
    ):
        with pytest.raises(AvatarifyError, match=message):
            remote_options(parser.parse_args(options))


def test_two_clients_with_different_avatars_at_once(shared_worker, small_model, frames, avatars):
    locals_ = {name: Predictor(small_model) for name in ("mona", "einstein")}
    with connect(shared_worker) as first, connect(shared_worker) as second:
        remotes = {"mona": first, "einstein": second}
        for name in remotes:
            locals_[name].set_avatar(avatars[name])
            remotes[name].set_avatar(avatars[name])
        for frame in frames[:4]:
            for name in ("einstein", "mona"):
                np.testing.assert_array_equal(remotes[name].predict(frame), locals_[name].predict(frame))


def test_switching_back_to_an_avatar_costs_no_upload(shared_worker, small_model, frames, avatars):
    # Mirrored pictures: avatars no other test has sent to this worker.
    first, second = (np.ascontiguousarray(avatars[name][:, ::-1]) for name in ("einstein", "obama"))
    before = shared_worker.log().count("Received avatar")
    local = Predictor(small_model)
    with connect(shared_worker) as remote:
        for image in (first, second, first, second, first):
            local.set_avatar(image)
            remote.set_avatar(image)
            np.testing.assert_array_equal(remote.predict(frames[1]), local.predict(frames[1]))
        assert remote.stats().avatar_uploads == 2
    # Another client (or this one after a reconnect) finds both in the worker's cache.
    local = Predictor(small_model)
    with connect(shared_worker) as remote:
        for image in (second, first):
            local.set_avatar(image)
            remote.set_avatar(image)
            np.testing.assert_array_equal(remote.predict(frames[2]), local.predict(frames[2]))
        assert remote.stats().avatar_uploads == 0
    assert shared_worker.log().count("Received avatar") == before + 2


def test_results_never_go_back_in_time(shared_worker, small_model, frames, avatars):
    """With no time to wait, frames pile up and the worker skips stale ones; what comes back only moves forward."""
    local = Predictor(small_model)
    local.set_avatar(avatars["mona"])
    expected = [local.predict(frame) for frame in frames]
    with connect(shared_worker, frame_timeout=0.0) as remote:
        remote.set_avatar(avatars["mona"])
        shown = []
        for frame in frames:
            for _ in range(4):
                try:
                    output = remote.predict(frame)
                except EngineUnavailable:  # no result has come back yet
                    assert not shown
                    continue
                matches = [i for i, candidate in enumerate(expected) if np.array_equal(output, candidate)]
                assert matches, "a result that is none of the frames' results"
                shown.append(matches[0])
        deadline = time.monotonic() + LOG_TIMEOUT
        while not shown or shown[-1] != len(frames) - 1:
            assert time.monotonic() < deadline, f"the last frame's result never came: {shown}"
            try:
                output = remote.predict(frames[-1])
            except EngineUnavailable:
                continue
            shown += [i for i, candidate in enumerate(expected) if np.array_equal(output, candidate)]
        stats = remote.stats()
    assert shown == sorted(shown)
    assert stats.frames + stats.dropped_frames >= len(set(shown))


def test_garbage_and_oversized_messages_are_dropped(shared_worker, small_model, frames, avatars):
    rogue = dealer(shared_worker.address)
    frame = prepare_frame(frames[0])
    bad = [
        ([b"\xff\xfe\x00 garbage"], "header is not JSON"),
        ([b'{"v": 2, "type": "reboot", "id": 1}'], "unknown message type 'reboot'"),
        ([b'{"v": 2, "type": "ping", "id": 1}', b"", b""], "3 message parts"),
        (encode_message("neutral", 2, bytes(1000), seq=1, enc="raw"), "raw image of 1000 bytes"),
        (encode_message("neutral", 3, bytes(1200 * 1024), seq=1, enc="raw"), "oversized payload"),
        (encode_message("avatar", 4, encode_image(frame, "raw"), hash="0" * 32, enc="raw"), "does not match its hash"),
        (encode_message("result", 5, encode_image(frame, "raw"), model_ms=1.0, enc="raw"), "result is not a request"),
    ]
    before = shared_worker.log().count("Dropped a message")
    for parts, _ in bad:
        rogue.send_multipart(parts)
    log = shared_worker.wait_for_log("Dropped a message", count=before + len(bad))
    for _, reason in bad:
        assert reason in log
    # A single part over the transport limit makes ZeroMQ drop that connection, unread.
    rogue.send_multipart([b'{"v": 2, "type": "ping", "id": 9}', bytes(4 * 1024 * 1024)])
    rogue.close()

    local = Predictor(small_model)
    local.set_avatar(avatars["mona"])
    with connect(shared_worker) as remote:
        remote.set_avatar(avatars["mona"])
        for frame in frames[:3]:
            np.testing.assert_array_equal(remote.predict(frame), local.predict(frame))
    assert shared_worker.process.poll() is None


CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from avatarify.core.errors import EngineUnavailable
    from avatarify.remote.client import RemotePredictor

    predictor = RemotePredictor(sys.argv[1], encoding="raw")
    predictor.wait_until_connected(120)
    rng = np.random.default_rng(0)
    predictor.set_avatar(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
    while True:
        try:
            predictor.predict(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        except EngineUnavailable:
            continue
        if predictor.stats().frames == 2:
            print("streaming", flush=True)
    """
)


def test_worker_survives_clients_that_vanish(shared_worker, small_model, frames, avatars):
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, shared_worker.address], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout.readline().strip() == "streaming"
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
    # A client that asks for a frame and disappears before the answer.
    rogue = dealer(shared_worker.address)
    fields = dict(avatar="0" * 32, neutral=1, calibrate=True, relative=True, adapt_movement_scale=True)
    rogue.send_multipart(
        encode_message("predict", 1, encode_image(prepare_frame(frames[0]), "raw"), enc="raw", quality=90,
                       motion_strength=1.0, **fields)
    )  # fmt: skip
    rogue.close(linger=1000)

    before = shared_worker.log().count("forgetting it")
    shared_worker.wait_for_log("forgetting it", count=before + 2)
    local = Predictor(small_model)
    local.set_avatar(avatars["obama"])
    with connect(shared_worker) as remote:
        remote.set_avatar(avatars["obama"])
        np.testing.assert_array_equal(remote.predict(frames[3]), local.predict(frames[3]))


def test_a_peer_without_an_identity_is_not_served(shared_worker):
    # ZeroMQ names such a peer as it names what is left of a connection a reconnect replaced: neither is a client.
    anonymous = zmq.Context.instance().socket(zmq.DEALER)
    anonymous.linger = 0
    anonymous.connect(shared_worker.address)
    anonymous.send_multipart(encode_message("hello", 0))
    named = dealer(shared_worker.address)
    named.send_multipart(encode_message("hello", 0))
    assert receive(named).type == "welcome"
    assert not anonymous.poll(1000)
    anonymous.close()
    named.close()


def test_worker_absent_killed_and_restarted(start_worker, small_model, frames, avatars):
    port = free_port()
    remote = RemotePredictor(f"tcp://127.0.0.1:{port}", encoding="raw")
    try:
        # No worker yet: the predictor says it cannot animate, and nothing blocks for long.
        remote.set_avatar(avatars["mona"])
        deadline = time.monotonic() + LOG_TIMEOUT
        while remote.state != UNREACHABLE:
            assert time.monotonic() < deadline, remote.state
            with pytest.raises(EngineUnavailable):
                remote.predict(frames[0])
        assert remote.stats().unavailable_frames > 0

        local = Predictor(small_model)
        local.set_avatar(avatars["mona"])
        worker = start_worker(port)
        assert remote.wait_until_connected(START_TIMEOUT), remote.state
        for frame in frames[:3]:
            np.testing.assert_array_equal(remote.predict(frame), local.predict(frame))

        worker.kill()
        deadline = time.monotonic() + LOG_TIMEOUT
        while remote.state != UNREACHABLE:
            assert time.monotonic() < deadline, remote.state
            try:
                remote.predict(frames[3])
            except EngineUnavailable:
                pass
        with pytest.raises(EngineUnavailable, match="worker unreachable"):
            remote.predict(frames[3])

        start_worker(port)
        assert remote.wait_until_connected(START_TIMEOUT), remote.state
        # The new worker gets the avatar and the neutral pose back: results continue exactly.
        for frame in frames[3:]:
            np.testing.assert_array_equal(remote.predict(frame), local.predict(frame))
        assert remote.stats().avatar_uploads == 2
    finally:
        remote.close()


def test_a_frozen_worker_is_noticed_by_heartbeats_and_resumes(start_worker, small_model, frames, avatars):
    """A stopped process keeps its connections open: only the missing heartbeat answers tell."""
    worker = start_worker()
    local = Predictor(small_model)
    local.set_avatar(avatars["einstein"])
    with connect(worker) as remote:
        remote.set_avatar(avatars["einstein"])
        np.testing.assert_array_equal(remote.predict(frames[0]), local.predict(frames[0]))
        worker.process.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + LOG_TIMEOUT
            while remote.state != UNREACHABLE:
                assert time.monotonic() < deadline, remote.state
                try:
                    remote.predict(frames[1])
                except EngineUnavailable:
                    pass
            with pytest.raises(EngineUnavailable):
                remote.predict(frames[1])
            assert remote.device_name == f"remote {worker.address} (worker unreachable)"
        finally:
            worker.process.send_signal(signal.SIGCONT)
        assert remote.wait_until_connected(START_TIMEOUT), remote.state
        for frame in frames[1:3]:
            np.testing.assert_array_equal(remote.predict(frame), local.predict(frame))
        assert remote.stats().unavailable_frames > 0
        assert remote.device_name == f"remote {worker.address}"


def test_worker_with_keys_accepts_only_authorized_clients(start_worker, tmp_path, small_model, frames, avatars):
    create_keys(tmp_path / "worker")
    create_keys(tmp_path / "stranger")
    worker = start_worker(None, "--keys", str(tmp_path / "worker"))
    good = load_client_keys(tmp_path / "worker")
    stranger = load_client_keys(tmp_path / "stranger")
    cases = [
        (dataclasses.replace(stranger, server_public=good.server_public), "does not accept this client's key"),
        (None, "requires keys"),
        (stranger, "is not the server.key in your keys folder"),
    ]
    for keys, message in cases:
        with pytest.raises(WorkerRefusedError, match=message):
            refused(worker.address, keys)

    local = Predictor(small_model)
    local.set_avatar(avatars["einstein"])
    with connect(worker, keys=good) as remote:
        remote.set_avatar(avatars["einstein"])
        for frame in frames[:2]:
            np.testing.assert_array_equal(remote.predict(frame), local.predict(frame))
    assert worker.process.poll() is None


def test_client_with_keys_is_told_when_the_worker_has_none(shared_worker, tmp_path):
    create_keys(tmp_path)
    with pytest.raises(WorkerRefusedError, match="does not use keys|runs without keys"):
        refused(shared_worker.address, load_client_keys(tmp_path))


def test_cli_refuses_a_worker_that_wants_keys_in_one_line(start_worker, tmp_path, avatar_path, driving_video):
    create_keys(tmp_path / "worker")
    worker = start_worker(None, "--keys", str(tmp_path / "worker"))
    result = subprocess.run(
        [sys.executable, "-m", "avatarify", "animate", str(avatar_path), str(driving_video),
         "-o", str(tmp_path / "out.mp4"), "--worker", worker.address],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=START_TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"avatarify: error: The worker at {worker.address} ")
    assert "requires keys" in last_line and "--worker-keys" in last_line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_animate_stops_without_a_file_when_the_worker_dies_mid_render(
    start_worker, tmp_path, avatar_path, driving_video
):
    worker = start_worker()
    output = tmp_path / "out.mp4"
    stderr_path = tmp_path / "animate.err"
    with open(stderr_path, "w") as stderr:
        animate = subprocess.Popen(
            [sys.executable, "-m", "avatarify", "animate", str(avatar_path), str(driving_video), "-o", str(output),
             "--worker", worker.address, "--worker-transport", "raw"],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        # The unfinished file appears with the first frame written: the render is under way. It is paused
        # there (the small model renders the whole clip in a moment) while the worker dies.
        deadline = time.monotonic() + START_TIMEOUT
        while not list(tmp_path.glob(".out-*.mp4")):
            assert animate.poll() is None, stderr_path.read_text()
            assert time.monotonic() < deadline, stderr_path.read_text()
            time.sleep(0.005)
        animate.send_signal(signal.SIGSTOP)
        worker.kill()
        animate.send_signal(signal.SIGCONT)
        assert animate.wait(timeout=START_TIMEOUT) == 2, stderr_path.read_text()
    finally:
        if animate.poll() is None:
            animate.send_signal(signal.SIGCONT)
            animate.kill()
    err = stderr_path.read_text()
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith(f"avatarify: error: The worker at {worker.address} stopped answering")
    assert "nothing was written" in last_line
    assert "Traceback" not in err and "camera image" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animate.err", worker.log_path.name]


def test_strict_predictor_never_returns_a_stand_in(start_worker, frames, avatars):
    worker = start_worker()
    with connect(worker, strict=True) as remote:
        assert remote.frame_timeout == 10.0
        remote.set_avatar(avatars["mona"])
        assert not np.array_equal(remote.predict(frames[0]), prepare_frame(frames[0]))
        worker.kill()
        with pytest.raises(WorkerLostError, match="stopped answering"):
            remote.predict(frames[1])
        assert remote.stats().unavailable_frames == 0


def test_worker_uses_the_precision_asked_for(start_worker, small_predictor, frames, avatars):
    worker = start_worker(None, "--precision", "fp32")
    small_predictor.set_avatar(avatars["einstein"])
    with connect(worker) as remote:
        remote.set_avatar(avatars["einstein"])
        for frame in frames[:2]:
            np.testing.assert_array_equal(remote.predict(frame), small_predictor.predict(frame))
    log = worker.log()
    # Once for the model loaded at start, once for this client's predictor.
    assert log.count("Model on cpu: fp32 decoder") == 2 and "bf16" not in log


def test_a_full_worker_refuses_clients_clearly_and_reconnects_keep_their_place(
    start_worker, frames, avatars, caplog
):
    worker = start_worker(None, "--client-timeout", "6", "--max-clients-per-peer", str(MAX_CLIENTS))
    clients = [connect(worker) for _ in range(MAX_CLIENTS)]
    try:
        # A client takes its place with its first request (here the avatar), not with its greeting.
        for client in clients:
            client.set_avatar(avatars["mona"])
        worker.wait_for_log("connected from", count=MAX_CLIENTS)
        with pytest.raises(WorkerRefusedError, match="is busy"):
            connect_remote(RemoteOptions(worker.address), wait=START_TIMEOUT)
        time.sleep(1.0)  # the worker logs at most one refusal a second
        # A client that is already running shows the refusal (logged once) and keeps asking.
        caplog.clear()
        waiting = RemotePredictor(worker.address, encoding="raw", frame_timeout=START_TIMEOUT)
        deadline = time.monotonic() + LOG_TIMEOUT
        while not waiting.state.startswith("refused: "):
            assert time.monotonic() < deadline, waiting.state
            time.sleep(0.05)
        assert "is busy" in waiting.device_name
        time.sleep(4 * HEARTBEAT_INTERVAL)
        assert [r.getMessage() for r in caplog.records].count(waiting.state.removeprefix("refused: ")) == 1

        # Every client reconnects after the worker froze, keeping its place: none is refused, none is new.
        worker.process.send_signal(signal.SIGSTOP)
        try:
            deadline = time.monotonic() + LOG_TIMEOUT
            while any(client.state != UNREACHABLE for client in clients):
                assert time.monotonic() < deadline, [client.state for client in clients]
                time.sleep(0.05)
        finally:
            worker.process.send_signal(signal.SIGCONT)
        for client in clients:
            assert client.wait_until_connected(START_TIMEOUT), client.state
        assert worker.log().count("connected from") == MAX_CLIENTS

        # A place frees up when a client leaves: the waiting one gets in by itself and is served.
        clients.pop().close()
        deadline = time.monotonic() + LOG_TIMEOUT
        while waiting.state != CONNECTED:
            assert time.monotonic() < deadline, waiting.state
            time.sleep(0.05)
        waiting.set_avatar(avatars["mona"])
        waiting.predict(frames[0])
        assert waiting.stats().frames == 1
        waiting.close()
        assert worker.log().count("Refused client") == 2
    finally:
        for client in clients:
            client.close()


class LosingWorker(threading.Thread):
    """A worker speaking the protocol by hand that loses the first avatar upload it gets (answering `rejected`)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.router = zmq.Context.instance().socket(zmq.ROUTER)
        self.router.linger = 0
        self.address = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        self.uploads = 0
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.router.poll(50):
                    identity, *parts = self.router.recv_multipart()
                    message = decode_message(parts)
                    if message.type != "bye":  # a client leaving expects no answer
                        self.router.send_multipart([identity, *self.answer(message)])
        finally:
            self.router.close()

    def answer(self, message) -> list[bytes]:
        known = self.uploads > 1
        if message.type == "hello":
            return encode_message("welcome", message.id, size=256)
        if message.type == "ping":
            return encode_message("pong", message.id)
        if message.type == "avatar" and message.payload is not None:
            self.uploads += 1
            if self.uploads == 1:
                return encode_message("error", message.id, code="rejected", message="the queue is full")
            return encode_message("avatar_ok", message.id, hash=message.header["hash"], known=True)
        if message.type == "avatar":
            return encode_message("avatar_ok", message.id, hash=message.header["hash"], known=known)
        if not known:
            return encode_message("error", message.id, code="need_avatar", message="avatar not uploaded")
        inverted = encode_image(255 - message.frame(), "raw")
        return encode_message("result", message.id, inverted, model_ms=1.0, enc="raw")


def test_a_lost_avatar_upload_is_sent_again(frames, avatars):
    worker = LosingWorker()
    worker.start()
    try:
        with RemotePredictor(worker.address, encoding="raw") as remote:
            assert remote.wait_until_connected(START_TIMEOUT), remote.state
            remote.set_avatar(avatars["mona"])
            # The first frame finds the avatar missing even after its retry: no result for it.
            with pytest.raises(EngineUnavailable, match="no result yet"):
                remote.predict(frames[0])
            np.testing.assert_array_equal(remote.predict(frames[1]), 255 - prepare_frame(frames[1]))
            assert remote.stats().avatar_uploads == 2
        assert worker.uploads == 2
    finally:
        worker.stop.set()
        worker.join(timeout=30)


@pytest.fixture
def serve_in_thread():
    """Run Worker(factory, client_timeout) in this process on a loopback port; stopped after the test."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def serve(factory, client_timeout: float = 10.0) -> tuple[Worker, threading.Event, threading.Thread]:
        worker = Worker(LocalBackend(factory), bind=f"tcp://127.0.0.1:{free_port()}", client_timeout=client_timeout)
        stop = threading.Event()
        thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
        thread.start()
        running.append((stop, thread))
        deadline = time.monotonic() + LOG_TIMEOUT
        while worker.endpoint is None:
            assert thread.is_alive() and time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.01)
        return worker, stop, thread

    yield serve
    for stop, thread in running:
        stop.set()
        thread.join(timeout=30)




def receive(socket: zmq.Socket):
    assert socket.poll(LOG_TIMEOUT * 1000), "no answer from the worker"
    return decode_message(socket.recv_multipart())


def test_worker_answers_heartbeats_and_stops_while_its_model_hangs(serve_in_thread):
    entered, release = threading.Event(), threading.Event()

    def hanging_predictor():
        entered.set()
        release.wait()
        raise RuntimeError("the model never came back")

    worker, stop, thread = serve_in_thread(hanging_predictor, client_timeout=0.5)
    try:
        flood = dealer(worker.endpoint)
        flood.send_multipart(encode_message("avatar", 1, hash="ab"))
        assert entered.wait(LOG_TIMEOUT)
        # The model thread hangs on the first request: the client's quota fills, and what does not fit is answered.
        for request_id in range(2, CLIENT_QUOTA + 8):
            flood.send_multipart(encode_message("avatar", request_id, hash="ab"))
        answers = [receive(flood) for _ in range(5)]
        assert [(m.type, m.header["code"], m.header["message"]) for m in answers] == [
            ("error", "rejected", "the queue is full")
        ] * 5
        # The flooding client falls silent: forgetting it must not wait for the hanging model thread.
        time.sleep(4 * worker.client_timeout)
        prober = dealer(worker.endpoint)
        prober.send_multipart(encode_message("ping", 7))
        assert receive(prober).type == "pong"
        stop.set()  # as SIGTERM does
        thread.join(timeout=LOG_TIMEOUT)
        assert not thread.is_alive()
        flood.close()
        prober.close()
    finally:
        release.set()


def test_worker_errors_do_not_tell_clients_the_details(serve_in_thread, caplog):
    def failing_predictor():
        raise RuntimeError("CUDA out of memory in /home/someone/models/secret.py")

    worker, _, _ = serve_in_thread(failing_predictor)
    client = dealer(worker.endpoint)
    client.send_multipart(encode_message("avatar", 3, hash="ab"))
    answer = receive(client)
    client.close()
    assert (answer.type, answer.id, answer.header["code"]) == ("error", 3, "failed")
    assert "secret" not in answer.header["message"] and "CUDA" not in answer.header["message"]
    assert any(r.exc_info and "secret.py" in str(r.exc_info[1]) for r in caplog.records)


def test_worker_status_reports_clients_frames_and_model_time(shared_worker, frames, avatars):
    from avatarify.remote.monitor import StatusError, query_status

    with connect(shared_worker) as remote:
        remote.set_avatar(avatars["mona"])
        remote.predict(frames[0])
        report = query_status(shared_worker.address)
        shown = subprocess.run(
            [sys.executable, "-m", "avatarify", "worker", "status", "--address", shared_worker.address],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=START_TIMEOUT,
        )  # fmt: skip
    assert report["clients"] >= 1 and report["counters"]["frames"] >= 1 and report["problem"] is None
    assert report["backend"]["backend"] == "local" and report["backend"]["model_ms"] > 0
    assert shown.returncode == 0 and "model      local on cpu" in shown.stdout
    # Nobody there: one line, no traceback.
    with pytest.raises(StatusError, match="No answer from the worker"):
        query_status(f"tcp://127.0.0.1:{free_port()}", timeout=0.5)
