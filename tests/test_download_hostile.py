"""The weights download against misbehaving mirrors: real HTTP servers on 127.0.0.1 that dribble, stall, never
stop or lie about the size. Each is that mirror's failure, the next mirror is tried, and nothing waits long:
the limits are tiny here through `TransferLimits`."""
from __future__ import annotations

import hashlib
import os
import socketserver
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from avatarify.cli.main import main
from avatarify.core.download import DownloadError, TransferLimits, download, part_path

PAYLOAD = os.urandom(200_000)
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()
FAST = TransferLimits(timeout=0.5, min_rate=20_000, rate_window=0.5, deadline=5.0)
# However a mirror misbehaves, the download gives up on it within its limits; this bounds each test.
QUICK = 6.0


def headers(length: int | None = None, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Mirror:
    """A real HTTP server on 127.0.0.1 answering every request with `behave(send, stop)`; `sent` counts bytes."""

    def __init__(self, behave: Callable) -> None:
        mirror = self
        self.stop = threading.Event()
        self.requests = 0
        self.sent = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.recv(65536)  # the request; its content does not matter here
                mirror.requests += 1

                def send(data: bytes) -> None:
                    self.request.sendall(data)
                    mirror.sent += len(data)

                try:
                    behave(send, mirror.stop)
                except OSError:
                    pass  # the client gave up on this mirror, as it should

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/vox.pth.tar"
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirrors():
    started: list[Mirror] = []

    def start(behave: Callable) -> Mirror:
        started.append(Mirror(behave))
        return started[-1]

    yield start
    for mirror in started:
        mirror.close()


def good(send, stop) -> None:
    send(headers(len(PAYLOAD)) + PAYLOAD)


def dribbles_headers(send, stop) -> None:
    send(b"HTTP/1.1 200 OK\r\n")
    for _ in range(300):  # a byte at a time: each one alone would reset a per-read timeout
        if stop.wait(0.05):
            return
        send(b"X")


def dribbles_body(send, stop) -> None:
    send(headers(len(PAYLOAD)))
    for byte in PAYLOAD[:300]:
        if stop.wait(0.05):
            return
        send(bytes([byte]))


def steady_but_too_long(send, stop) -> None:
    """Fast enough for the minimum rate, too slow for the deadline."""
    send(headers(len(PAYLOAD)))
    for start in range(0, len(PAYLOAD), 5000):
        if stop.wait(0.2):
            return
        send(PAYLOAD[start:start + 5000])


def endless(prefix: bytes) -> Callable:
    def behave(send, stop) -> None:
        send(headers() + prefix)  # no Content-Length: the body ends when the connection does
        junk = os.urandom(65536)
        while not stop.is_set():
            send(junk)

    return behave


def declares(length: int) -> Callable:
    def behave(send, stop) -> None:
        send(headers(length) + PAYLOAD)

    return behave


def fetch(urls: list[str], tmp_path: Path, **options) -> tuple[Path, float]:
    started = time.monotonic()
    options.setdefault("limits", FAST)
    path = download(urls, tmp_path / "w" / "vox.pth.tar", PAYLOAD_MD5, progress=False, **options)
    return path, time.monotonic() - started


@pytest.mark.parametrize(
    "behave, reason",
    [(dribbles_headers, "no answer within 0.5 s"), (dribbles_body, "too slow"),
     (steady_but_too_long, "did not deliver the file within 1 s")],  # fmt: skip
    ids=["headers a byte at a time", "body a byte at a time", "steady but past the deadline"],
)
def test_slow_mirrors_are_abandoned_for_the_next(behave, reason, mirrors, tmp_path, caplog):
    slow, fine = mirrors(behave), mirrors(good)
    limits = TransferLimits(timeout=0.5, min_rate=20_000, rate_window=0.5, deadline=1.0)
    path, seconds = fetch([slow.url, fine.url], tmp_path, limits=limits)
    assert path.read_bytes() == PAYLOAD
    assert seconds < QUICK
    assert any(reason in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]


def test_bytes_show_as_they_arrive(mirrors, tmp_path):
    release = threading.Event()

    def stalls(send, stop) -> None:
        send(headers(len(PAYLOAD)) + PAYLOAD[:1000])
        release.wait(10)
        send(PAYLOAD[1000:])

    mirror = mirrors(stalls)
    done: list[Path] = []
    worker = threading.Thread(
        target=lambda: done.append(fetch([mirror.url], tmp_path, limits=TransferLimits(timeout=10))[0])
    )
    worker.start()
    part = part_path(tmp_path / "w" / "vox.pth.tar")
    deadline = time.monotonic() + QUICK
    while not (part.exists() and part.stat().st_size == 1000):
        assert time.monotonic() < deadline, "the first bytes did not reach the file while the mirror paused"
        time.sleep(0.01)
    release.set()
    worker.join(QUICK)
    assert done and done[0].read_bytes() == PAYLOAD


def test_an_endless_body_stops_at_the_expected_size(mirrors, tmp_path):
    mirror = mirrors(endless(PAYLOAD))
    path, seconds = fetch([mirror.url], tmp_path, size=len(PAYLOAD))
    assert path.read_bytes() == PAYLOAD and seconds < QUICK
    assert mirror.sent < len(PAYLOAD) + 20 * 2**20  # the client stopped reading, the mirror had to stop sending


def test_an_endless_body_of_unknown_size_stops_at_the_cap(mirrors, tmp_path, caplog):
    endless_mirror, fine = mirrors(endless(b"")), mirrors(good)
    limits = TransferLimits(timeout=1, max_size=4 * len(PAYLOAD))
    path, seconds = fetch([endless_mirror.url, fine.url], tmp_path, limits=limits)
    assert path.read_bytes() == PAYLOAD and seconds < QUICK
    assert any("sends more than the 800000 bytes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "size, declared",
    [(None, 10**13), (None, 10**30), (len(PAYLOAD), 10**13), (len(PAYLOAD), 10**30), (len(PAYLOAD), len(PAYLOAD) + 1)],
    ids=["10 TB, size unknown", "10^30, size unknown", "10 TB, size known", "10^30, size known", "one byte more"],
)
def test_a_mirror_declaring_a_wrong_size_is_skipped_not_a_disk_error(size, declared, mirrors, tmp_path, caplog):
    liar, fine = mirrors(declares(declared)), mirrors(good)
    path, _ = fetch([liar.url, fine.url], tmp_path, size=size)
    assert path.read_bytes() == PAYLOAD
    assert fine.requests == 1
    assert not any("disk space" in r.getMessage() for r in caplog.records)


def test_only_the_real_expected_size_can_be_a_disk_space_error(mirrors, tmp_path):
    fine = mirrors(good)
    with pytest.raises(DownloadError, match="Not enough disk space"):
        fetch([fine.url], tmp_path, size=10**18)
    assert fine.requests == 0


@pytest.mark.parametrize(
    "name", ["../../escaped", "../escaped", "{tmp}/absolute", "sub/escaped", "..", ".", "", "nul\0byte", "x" * 300]
)
def test_weights_download_name_cannot_leave_the_destination(name, mirrors, tmp_path, capsys):
    name = name.replace("{tmp}", str(tmp_path))
    fine = mirrors(good)
    dest = tmp_path / "a" / "b" / "dest"
    dest.mkdir(parents=True)
    code = main(["weights", "download", "--dest", str(dest), "--url", fine.url, "--md5", PAYLOAD_MD5, "--name", name])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("avatarify: error: --name") and "\n" not in err, err
    assert fine.requests == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == []
