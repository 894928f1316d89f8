"""The worker on Ray Serve: `avatarify worker --ray` front ends on a real Ray on this machine, real clients over
loopback. Slow (Ray takes half a minute to start on two cores): one embedded front end serves most tests."""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray Serve is not installed: pip install '.[serve]' (./test.sh installs it)")

from avatarify.core.errors import EngineUnavailable  # noqa: E402
from avatarify.core.frame import MotionOptions  # noqa: E402
from avatarify.remote.client import CONNECTED, RemotePredictor, WorkerRefusedError  # noqa: E402
from avatarify.remote.keys import create_keys, load_client_keys  # noqa: E402
from avatarify.remote.monitor import query_status  # noqa: E402
from test_remote_worker import JpegLinkPredictor, WorkerProcess, animate, free_port, refused  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.worker]
REPO_ROOT = Path(__file__).resolve().parents[1]
# Ray starting, replicas loading the model, a replica replaced: generous limits that only guard against hangs.
RAY_TIMEOUT = 300.0
NAMES = ("mona", "einstein", "obama")
# Front ends whose frames are compared with the local predictor's: a bf16 decoder (where the CPU has one) rounds a
# batch differently from a single frame, so both sides run in fp32.
FP32 = ("--precision", "fp32")


def wait_until(condition, what: str, timeout: float = RAY_TIMEOUT, worker: WorkerProcess | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if worker is not None:
            assert worker.process.poll() is None, f"the front end exited:\n{worker.log()}"
        assert time.monotonic() < deadline, f"{what}" + (f"\n{worker.log()[-4000:]}" if worker else "")
        time.sleep(0.2)


def connect(address: str, keys=None, worker: WorkerProcess | None = None) -> RemotePredictor:
    """A client once the worker serves it (it refuses while its model is not ready; the client keeps asking)."""
    client = RemotePredictor(address, keys=keys, encoding="jpeg", frame_timeout=60.0)
    wait_until(lambda: client.state == CONNECTED, f"the client never got served: {client.state}", worker=worker)
    return client


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    create_keys(directory)
    return directory


@pytest.fixture(scope="module")
def front(golden_dir, keys_dir, tmp_path_factory):
    """A keyed front end on an embedded Ray with two replicas. Sessions that each wait for their last frame take
    turns on a replica rather than meet there, unless batches wait for them: here they wait long enough."""
    worker = WorkerProcess(
        golden_dir, free_port(), tmp_path_factory.mktemp("front") / "front.log",
        "--ray", "--replicas", "2", "--batch-wait", "250", "--max-batch", "4", "--keys", str(keys_dir), "--client-timeout", "5", *FP32,
    )  # fmt: skip
    try:
        worker.wait_for_log("is ready", timeout=RAY_TIMEOUT)
        yield worker
    finally:
        worker.process.send_signal(signal.SIGTERM)  # the link takes the embedded Ray down with it
        try:
            worker.process.wait(timeout=60)
        finally:
            worker.kill()


@pytest.fixture(scope="module")
def expected(golden_dir, frames, avatars) -> dict[str, list[np.ndarray]]:
    """Each avatar's frames from the local predictor, behind the JPEG coding the link applies both ways."""
    from avatarify.model.fomm import load_model

    model = load_model(golden_dir / "config.yaml", golden_dir / "checkpoint.pth.tar")
    return {name: animate(JpegLinkPredictor(model, precision=FP32[1]), avatars[name], frames) for name in NAMES}


def run_clients(address: str, keys, avatars, frames) -> dict[str, list[np.ndarray]]:
    """Three clients, three avatars, at once: their frames meet in the replicas' batches."""
    outputs: dict[str, list[np.ndarray]] = {}
    clients = {name: connect(address, keys) for name in NAMES}
    try:
        threads = [threading.Thread(target=lambda n=name: outputs.__setitem__(n, animate(clients[n], avatars[n], frames)))
                   for name in NAMES]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=RAY_TIMEOUT)
    finally:
        for client in clients.values():
            client.close()
    return outputs


def assert_own_avatar(outputs: dict[str, list[np.ndarray]], expected: dict[str, list[np.ndarray]]) -> None:
    for name in NAMES:
        assert len(outputs[name]) == len(expected[name]), f"{name}: missing frames"
        for mine, theirs in zip(outputs[name], expected[name], strict=True):
            # Batching changes float rounding, and so at times an 8-bit level before the JPEG coding.
            assert np.abs(mine.astype(int) - theirs).mean() < 1.0
            for other in NAMES:
                if other != name:
                    assert np.abs(mine.astype(int) - expected[other][0]).mean() > 5.0


def test_three_clients_with_three_avatars_get_their_own_frames_batched(front, keys_dir, avatars, frames, expected):
    keys = load_client_keys(keys_dir)
    assert_own_avatar(run_clients(front.address, keys, avatars, frames), expected)
    report = query_status(front.address, keys)
    backend = report["backend"]
    assert backend["backend"] == "ray" and backend["replica_states"] == {"RUNNING": 2}
    assert report["counters"]["frames"] >= 3 * len(expected["mona"])
    # Frames of different sessions did share model calls.
    assert max(int(size) for size in backend["batch_sizes"]) >= 2, backend["batch_sizes"]
    assert {"decode", "keypoints", "generator", "encode", "round_trip"} <= set(backend["stage_ms"])
    shown = subprocess.run(
        [sys.executable, "-m", "avatarify", "worker", "status", "--address", front.address, "--keys", str(keys_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "2 running" in shown.stdout and shown.stdout.count("replica ") >= 1
    assert "Ray Serve:" in front.wait_for_log("Ray Serve:")  # the figures are logged every few seconds


def test_an_unauthenticated_client_is_refused_at_the_front_end(front, keys_dir, tmp_path):
    create_keys(tmp_path / "stranger")
    with pytest.raises(WorkerRefusedError, match="requires keys"):
        refused(front.address, None)
    stranger = load_client_keys(tmp_path / "stranger")
    with pytest.raises(WorkerRefusedError, match="is not the server.key"):
        refused(front.address, stranger)


def test_a_killed_replica_is_replaced_and_the_clients_go_on(front, keys_dir, avatars, frames, expected):
    keys = load_client_keys(keys_dir)

    def replicas() -> dict:
        return query_status(front.address, keys)["backend"]["replicas"]

    victim = next(replica["pid"] for replica in replicas().values() if replica["state"] == "RUNNING")
    results: dict[str, int] = {name: 0 for name in NAMES[:2]}
    stop = threading.Event()

    def stream(client: RemotePredictor, name: str) -> None:
        client.set_avatar(avatars[name])
        while not stop.is_set():
            try:
                client.predict(frames[results[name] % len(frames)])
                results[name] += 1
            except EngineUnavailable:
                time.sleep(0.05)

    clients = {name: connect(front.address, keys) for name in results}
    threads = [threading.Thread(target=stream, args=(clients[name], name)) for name in results]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: min(results.values()) >= 2, "the clients never got going", worker=front)
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        counts = dict(results)

        def replaced() -> bool:
            now = replicas().values()
            return sorted(replica["state"] for replica in now) == ["RUNNING"] * 2 and victim not in {
                replica["pid"] for replica in now
            }

        wait_until(replaced, "the killed replica was not replaced", worker=front)
        wait_until(lambda: all(results[name] >= counts[name] + 3 for name in results), "the clients stopped", worker=front)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for client in clients.values():
            client.close()
    # And what they get is still right, whichever replica serves them now.
    assert_own_avatar(run_clients(front.address, keys, avatars, frames), expected)


class RayHead:
    """`ray start --head --block` on a free port of this machine, started when a test says; stopped at the end."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={self.port}",
                   "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"]  # fmt: skip
        # Stopped at once when told, without the half minute Ray gives running work to move elsewhere.
        env = {**os.environ, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_front_ends_wait_for_ray_tell_their_clients_and_share_one_deployment(
    golden_dir, tmp_path, avatars, frames, expected, monkeypatch
):
    # A cluster with token authentication, as a real one has: the head and the front ends share the token.
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    head = RayHead(tmp_path / "head.log")
    first = WorkerProcess(golden_dir, free_port(), tmp_path / "first.log", "--ray", "--ray-address", head.address, *FP32)
    second = None
    client = RemotePredictor(first.address, encoding="jpeg", frame_timeout=60.0)
    try:
        first.wait_for_log("Worker serving on")
        # No Ray there yet: the front end serves its socket and says why it cannot animate.
        wait_until(lambda: "nothing answers" in client.state, f"no clear status: {client.state}", 60, first)
        assert client.state.startswith(f"refused: The worker at {first.address} cannot animate now: the model on Ray at ")
        assert f"nothing answers at {head.address}" in client.state
        client.set_avatar(avatars["mona"])
        with pytest.raises(EngineUnavailable, match="cannot animate now"):
            client.predict(frames[0])
        assert "nothing answers" in query_status(first.address)["problem"]

        head.start()
        wait_until(lambda: client.state == CONNECTED, f"never served once Ray came: {client.state}", worker=first)
        outputs = {"mona": animate(client, avatars["mona"], frames)}
        # A second front end joins the running deployment rather than deploying its own.
        second = WorkerProcess(
            golden_dir, free_port(), tmp_path / "second.log", "--ray", "--ray-address", head.address, *FP32
        )
        second.wait_for_log("Joining the deployment already running", timeout=RAY_TIMEOUT)
        with connect(second.address, worker=second) as other:
            outputs["einstein"] = animate(other, avatars["einstein"], frames)

        # Ray goes away while serving: the front end stays, says why, and serves again once Ray is back.
        head.stop()
        wait_until(lambda: "cannot animate now" in client.state, f"no clear status: {client.state}", 120, first)
        head.start()
        wait_until(lambda: client.state == CONNECTED, f"not served again: {client.state}", worker=first)
        client.motion = MotionOptions()  # as a fresh session starts, for the comparison
        client.calibrate()
        outputs["obama"] = animate(client, avatars["obama"], frames)
        assert "The model on Ray at" in first.log() and "is unavailable" in first.log()
        for name, frames_out in outputs.items():
            for mine, theirs in zip(frames_out, expected[name], strict=True):
                assert np.abs(mine.astype(int) - theirs).mean() < 1.0
    finally:
        client.close()
        for worker in (first, second):
            if worker is not None:
                worker.kill()
        head.stop()


def test_the_link_ends_with_its_front_end_even_while_waiting_for_ray(golden_dir, tmp_path):
    port = free_port()
    front = WorkerProcess(golden_dir, free_port(), tmp_path / "front.log", "--ray", "--ray-address", f"127.0.0.1:{port}")
    try:
        log = front.wait_for_log("nothing answers", timeout=RAY_TIMEOUT)
        link = int(re.search(r"Started the link to Ray at \S+ \(process (\d+)\)", log).group(1))
    finally:
        front.kill()  # no chance to stop its link: the link must notice by itself
    deadline = time.monotonic() + 30
    while Path(f"/proc/{link}").exists() and "zombie" not in _state(link):
        assert time.monotonic() < deadline, f"the link process {link} outlived its front end"
        time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].splitlines()[0]
    except (OSError, IndexError):
        return "zombie"  # gone meanwhile
