"""Serving many sessions: today's worker against `avatarify worker --ray` with 1 and 2 replicas, in one run.

Starts each worker on a free 127.0.0.1 port (the small test checkpoint from ../shared unless --checkpoint/--config
are given), then drives it with 1, 2, 4 and 8 concurrent sessions, each with an avatar of its own and real
driving-video frames sent as JPEG; every session keeps one frame in flight (it sends the next as soon as the last
came back), so the figures are what the worker can take. Printed per worker and session count:
  fps          - frames per second over all sessions together
  p50/p90/p99  - per-frame latency percentiles as the session sees it (predict() call), in ms
  vs worker    - fps relative to today's worker at the same session count
On the CPU the replicas share this machine's cores (each gets cores/replicas threads, as the worker gets them all).

With --batch-sizes 1,4,8,16 (for a GPU machine: --device cuda) it instead finds, for each largest batch, how many
sessions one replica keeps at 30 fps each: sessions double while every one of them still gets 29 fps or more.

    python bench/serve.py [--sessions 1,2,4,8] [--seconds 8] [--device cpu] [--checkpoint C --config Y]
    python bench/serve.py --device cuda --batch-sizes 1,4,8,16 [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avatarify.core.errors import EngineUnavailable
from avatarify.core.images import read_image
from avatarify.remote.client import CONNECTED, RemotePredictor
from worker import AVATAR, GOLDEN, free_port, read_frames

AVATARS = sorted(AVATAR.parent.glob("*.jpg"))
READY_TIMEOUT = 600.0
TARGET_FPS = 30.0


@dataclass
class Run:
    """One worker under one number of sessions."""

    frames: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def start_worker(address: str, args: argparse.Namespace, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "avatarify", "worker", "--bind", address, "--device", args.device,
               "--checkpoint", str(args.checkpoint), "--config", str(args.config), "--max-clients-per-peer", "64",
               *options]  # fmt: skip
    log = open(args.log_dir / f"worker-{address.rsplit(':', 1)[1]}.log", "ab")  # noqa: SIM115 - the process keeps it
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def served_client(address: str, frame_timeout: float) -> RemotePredictor:
    """A client once the worker serves it (a --ray worker refuses until its replicas are up)."""
    client = RemotePredictor(address, encoding="jpeg", frame_timeout=frame_timeout)
    deadline = time.monotonic() + READY_TIMEOUT
    while client.state != CONNECTED:
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker at {address} never served: {client.state}")
        time.sleep(0.2)
    return client


def drive(address: str, sessions: int, frames: list[np.ndarray], seconds: float, paced: bool = False) -> Run:
    """`sessions` clients at once for `seconds` after 2 s of warm-up. Each keeps one frame in flight and times its
    calls; or (`paced`) behaves as the app does with a 30 fps camera: never waits, two frames in flight at most,
    and the frames it gets back and their round trips are counted."""
    clients = [served_client(address, 0.0 if paced else 60.0) for _ in range(sessions)]
    run, lock = Run(seconds=seconds), threading.Lock()
    begin = time.monotonic() + 2.0
    end = begin + seconds

    def session(client: RemotePredictor, avatar: np.ndarray) -> None:
        client.set_avatar(avatar)
        index, counted = 0, None
        while time.monotonic() < end:
            before = time.monotonic()
            if counted is None and before >= begin:
                counted = client.stats().frames
            try:
                client.predict(frames[index % len(frames)])
            except EngineUnavailable:  # no result yet
                pass
            index += 1
            if paced:
                time.sleep(max(0.0, before + 1.0 / TARGET_FPS - time.monotonic()))
            elif before >= begin:
                with lock:
                    run.latencies.append((time.monotonic() - before) * 1000.0)
        stats = client.stats()
        with lock:
            run.frames += stats.frames - (counted or 0)
            if paced and stats.round_trip_ms is not None:
                run.latencies.append(stats.round_trip_ms)

    avatars = [read_image(AVATARS[i % len(AVATARS)]) for i in range(sessions)]
    threads = [threading.Thread(target=session, args=pair) for pair in zip(clients, avatars)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    return run


def compare(args: argparse.Namespace, frames: list[np.ndarray]) -> None:
    cores = os.cpu_count() or 1
    configurations = {"worker": ()}
    for replicas in (1, 2):
        options = ("--ray", "--replicas", str(replicas), "--max-batch", str(args.max_batch))
        if args.device == "cpu":
            options += ("--replica-cpus", str(max(1, cores // replicas)))
        configurations[f"ray x{replicas}"] = options
    results: dict[tuple[str, int], Run] = {}
    for name, options in configurations.items():
        address = f"tcp://127.0.0.1:{free_port()}"
        worker = start_worker(address, args, *options)
        try:
            for sessions in args.sessions:
                results[name, sessions] = drive(address, sessions, frames, args.seconds)
                print(f"  {name:8} {sessions} sessions: {results[name, sessions].fps:.1f} fps", flush=True)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    print(f"\n{'sessions':>8} {'worker':10} {'fps':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'vs worker':>9}")
    for sessions in args.sessions:
        base = results["worker", sessions].fps
        for name in configurations:
            run = results[name, sessions]
            ratio = run.fps / base if base else float("nan")
            print(f"{sessions:8} {name:10} {run.fps:7.1f} {run.percentile(50):8.0f} {run.percentile(90):8.0f} "
                  f"{run.percentile(99):8.0f} {ratio:8.2f}x")  # fmt: skip


def sessions_at_30_fps(args: argparse.Namespace, frames: list[np.ndarray]) -> None:
    print(f"{'max batch':>9} {'sessions at 30 fps':>18} {'fps then':>9} {'median round trip ms':>20}")
    for batch in args.batch_sizes:
        address = f"tcp://127.0.0.1:{free_port()}"
        worker = start_worker(address, args, "--ray", "--replicas", "1", "--max-batch", str(batch))
        try:
            best, best_run, sessions = 0, None, 1
            while sessions <= 256:
                run = drive(address, sessions, frames, args.seconds, paced=True)
                if run.fps < sessions * (TARGET_FPS - 1):
                    break
                best, best_run, sessions = sessions, run, sessions * 2
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        figures = f"{best_run.fps:9.1f} {best_run.percentile(50):20.0f}" if best_run else ""
        print(f"{batch:9} {best:18} {figures}", flush=True)


def numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=numbers, default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per run, after 2 s of warm-up")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-sizes", type=numbers, help="find the sessions per replica at 30 fps for these")
    parser.add_argument("--checkpoint", type=Path, default=GOLDEN / "checkpoint.pth.tar")
    parser.add_argument("--config", type=Path, default=GOLDEN / "config.yaml")
    parser.add_argument("--log-dir", type=Path, default=Path("bench-logs"), help="where the workers' logs go")
    args = parser.parse_args()
    args.log_dir.mkdir(parents=True, exist_ok=True)
    frames = read_frames(40)
    print(f"model: {args.checkpoint.parent.name} on {args.device}; {os.cpu_count()} cores; JPEG frames over loopback")
    if args.batch_sizes:
        sessions_at_30_fps(args, frames)
    else:
        compare(args, frames)


if __name__ == "__main__":
    main()
