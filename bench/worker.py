"""What the remote worker adds over loopback, raw and JPEG frames at 256x256.

Starts `avatarify worker` on a free 127.0.0.1 port (the small test checkpoint from ../shared unless
--checkpoint/--config are given) and drives it with real driving-video frames. Transports are timed in
interleaved rounds so that machine noise hits all alike. Printed, as medians over all frames:
  call ms      - what predict() takes for the caller (sequential use: one frame in flight)
  worker ms    - the model's time inside the worker
  added ms     - each frame's round trip less its model time: sockets, decoding, queueing (the cost of going remote)
  seq fps      - frames per second, one predict() after another
  pipe fps     - results per second when the caller never waits (frame_timeout=0, at most two frames in
                 flight, a 30 fps camera feeding it; the worker skips stale frames)
  bytes/frame  - payload both ways
and the in-process predictor's ms/frame for comparison. Worker and client share this machine's cores.

    python bench/worker.py [--frames 40] [--rounds 3] [--checkpoint C --config Y] [--quality 90]
"""
from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from avatarify.model.fomm import load_model
from avatarify.core.images import read_image
from avatarify.core.errors import EngineUnavailable
from avatarify.core.frame import prepare_frame
from avatarify.model.predictor import Predictor
from avatarify.remote.client import RemotePredictor
from avatarify.remote.protocol import decode_image, encode_image

SHARED = Path(__file__).resolve().parents[2] / "shared"
GOLDEN = SHARED / "fomm-reference" / "golden_small_a"
VIDEO = SHARED / "media" / "driving" / "d0.mp4"
AVATAR = SHARED / "media" / "avatars" / "mona.jpg"
CAMERA_FPS = 30


def read_frames(count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(prepare_frame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
    capture.release()
    return frames


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_worker(address: str, checkpoint: Path, config: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "avatarify", "worker", "--bind", address, "--device", "cpu",
               "--checkpoint", str(checkpoint), "--config", str(config)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sequential(predictor, avatar: np.ndarray, frames: list[np.ndarray]) -> tuple[list[float], float]:
    """Per-call ms and frames per second, calling predict() one frame after another.

    Runs in a thread of its own, as the app's pipeline and the worker's model thread do: torch's
    intra-op threading behaves differently on the main thread (much slower on a busy 2-core machine).
    """
    result: list[tuple[list[float], float]] = []
    thread = threading.Thread(target=lambda: result.append(_sequential(predictor, avatar, frames)))
    thread.start()
    thread.join()
    return result[0]


def _sequential(predictor, avatar: np.ndarray, frames: list[np.ndarray]) -> tuple[list[float], float]:
    predictor.set_avatar(avatar)
    predictor.predict(frames[0])  # upload, neutral pose, warm-up
    times = []
    started = time.perf_counter()
    for frame in frames:
        before = time.perf_counter()
        predictor.predict(frame)
        times.append((time.perf_counter() - before) * 1000.0)
    return times, len(frames) / (time.perf_counter() - started)


def open_client(address: str, **options) -> RemotePredictor:
    """A remote predictor, once the worker has answered it."""
    client = RemotePredictor(address, **options)
    if not client.wait_until_connected(120):
        raise SystemExit(f"the worker at {address} did not answer: {client.state}")
    return client


def pipelined(address: str, options: dict, avatar: np.ndarray, frames: list[np.ndarray], seconds: float) -> float:
    """Results per second when predict() never waits for its own frame, fed by a 30 fps camera."""
    with open_client(address, frame_timeout=0.0, **options) as client:
        client.set_avatar(avatar)
        started = time.perf_counter()
        index = 0
        while time.perf_counter() - started < seconds:
            try:
                client.predict(frames[index % len(frames)])
            except EngineUnavailable:  # no result has come back yet
                pass
            index += 1
            time.sleep(max(0.0, started + index / CAMERA_FPS - time.perf_counter()))
        return client.stats().frames / (time.perf_counter() - started)


def codec_ms(frames: list[np.ndarray], quality: int) -> tuple[float, float, int]:
    encode, decode, sizes = [], [], []
    for frame in frames:
        before = time.perf_counter()
        data = encode_image(frame, "jpeg", quality)
        middle = time.perf_counter()
        decode_image("jpeg", data)
        decode.append((time.perf_counter() - middle) * 1000.0)
        encode.append((middle - before) * 1000.0)
        sizes.append(len(data))
    return statistics.median(encode), statistics.median(decode), int(statistics.median(sizes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each pipelined run")
    parser.add_argument("--checkpoint", type=Path, default=GOLDEN / "checkpoint.pth.tar")
    parser.add_argument("--config", type=Path, default=GOLDEN / "config.yaml")
    args = parser.parse_args()

    frames = read_frames(args.frames)
    avatar = read_image(AVATAR)
    address = f"tcp://127.0.0.1:{free_port()}"
    worker = start_worker(address, args.checkpoint, args.config)
    local = Predictor(load_model(args.config, args.checkpoint))
    transports = {
        "raw": {"encoding": "raw"},
        f"jpeg q{args.quality}": {"encoding": "jpeg", "jpeg_quality": args.quality},
    }
    clients = {name: open_client(address, **options) for name, options in transports.items()}
    try:
        calls: dict[str, list[float]] = {"local": [], **{name: [] for name in clients}}
        fps: dict[str, list[float]] = {name: [] for name in calls}
        worker_ms: dict[str, list[float]] = {name: [] for name in clients}
        added_ms: dict[str, list[float]] = {name: [] for name in clients}
        pipe: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.rounds):
            for name, predictor in (("local", local), *clients.items()):
                times, rate = sequential(predictor, avatar, frames)
                calls[name] += times
                fps[name].append(rate)
                if name in clients:
                    worker_ms[name].append(predictor.stats().worker_ms)
                    added_ms[name].append(predictor.stats().overhead_ms)
            for name, options in transports.items():
                pipe[name].append(pipelined(address, options, avatar, frames, args.seconds))
        sizes = {name: client.stats().bytes_per_frame for name, client in clients.items()}
    finally:
        for client in clients.values():
            client.close()
        worker.kill()
        worker.wait()

    print(f"{len(frames)} frames x {args.rounds} rounds, 256x256, loopback; model: {args.checkpoint.parent.name}")
    print(f"{'':12} {'call ms':>8} {'worker ms':>9} {'added ms':>8} {'seq fps':>8} {'pipe fps':>8} {'bytes/frame':>11}")
    local_ms = statistics.median(calls["local"])
    print(f"{'local':12} {local_ms:8.1f} {'':>9} {'':>8} {statistics.median(fps['local']):8.1f}")
    for name in clients:
        call = statistics.median(calls[name])
        model = statistics.median(worker_ms[name])
        added = statistics.median(added_ms[name])
        print(
            f"{name:12} {call:8.1f} {model:9.1f} {added:8.1f} {statistics.median(fps[name]):8.1f} "
            f"{statistics.median(pipe[name]):8.1f} {sizes[name]:11.0f}"
        )
        print(f"{'':12} remote/local call time: {call / local_ms:.2f}x")
    encode, decode, size = codec_ms(frames, args.quality)
    print(f"JPEG q{args.quality} codec in-process: encode {encode:.2f} ms, decode {decode:.2f} ms, {size} bytes")


if __name__ == "__main__":
    main()
