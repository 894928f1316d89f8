"""Resumable, checksum-verified, atomic HTTP downloads from a list of mirrors, safe against misbehaving ones.

A mirror gets a fixed time to answer, must keep up a minimum rate and finish by an overall deadline, and may send
no more than the file's size (or a cap when the size is not known): one that trickles, stalls, sends without end
or declares an absurd size is that mirror's failure, and the next mirror is tried. Progress shows as bytes arrive.
"""
from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .. import __version__
from .errors import AvatarifyError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
PART_SUFFIX = ".part"
# The most a download of unknown size may bring (callers that know better say so).
DEFAULT_MAX_SIZE = 4 << 30
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


class DownloadError(AvatarifyError):
    """A download failed everywhere it was tried, or its file could not be written."""


class _SourceFailed(Exception):
    """This URL cannot deliver the file; the next mirror may."""


class _Interrupted(Exception):
    """The transfer stopped early; what arrived stays in the part file."""


@dataclass(frozen=True)
class TransferLimits:
    """How long and how slowly a mirror may deliver before the next one is tried, and how much it may send.

    `timeout`: seconds to connect and receive the whole response header, and the longest silence mid-transfer;
    `min_rate` (bytes per second) must be kept up over every `rate_window` seconds; `deadline`: seconds one
    mirror has for the whole file; `max_size`: bytes a download of unknown size may bring.
    """

    timeout: float = 30.0
    min_rate: float = 16 * 1024
    rate_window: float = 30.0
    deadline: float = 2 * 3600.0
    max_size: int = DEFAULT_MAX_SIZE


@dataclass
class _Job:
    """One mirror's attempt at the file: its limits, the expected size, and the moment it must be done by."""

    url: str
    part: Path
    size: int | None
    limits: TransferLimits
    ends: float
    progress: bool

    @property
    def cap(self) -> int:
        """The most bytes the file may have."""
        return self.size if self.size is not None else self.limits.max_size


def part_path(dest: Path) -> Path:
    """Where an unfinished download of `dest` is kept (beside it, so the final rename is atomic)."""
    return dest.with_name(dest.name + PART_SUFFIX)


def file_md5(path: str | os.PathLike) -> str:
    """Hex md5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    urls: Sequence[str],
    dest: str | os.PathLike,
    md5: str | None = None,
    *,
    size: int | None = None,
    limits: TransferLimits = TransferLimits(),
    max_attempts: int = 5,
    progress: bool = True,
) -> Path:
    """Fetch `dest` from the first URL that delivers it intact, and move it into place atomically.

    Bytes arrive in `dest` + ".part", which survives failures so that the next call resumes it with an
    HTTP Range request. A dropped connection is resumed up to `max_attempts` times per URL while it still
    makes progress. With `md5`, a file with another checksum is discarded and never reaches `dest`. With
    `size` (the file's exact size, when known), no more is read than that, a mirror declaring another size is
    skipped, and a disk that cannot hold it fails at once; without, `limits.max_size` caps what is accepted.
    Raises `DownloadError` listing every URL tried and why it failed.
    """
    if not urls:
        raise ValueError("no URL to download from")
    dest = Path(dest)
    part = part_path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"Cannot create {dest.parent}: {exc.strerror or exc}.") from exc
    if size is not None and not _fits(part, size):
        raise DownloadError(
            f"Not enough disk space in {part.parent}: the download needs {(size - _size(part)) / 1e6:.0f} MB, "
            f"{shutil.disk_usage(part.parent).free / 1e6:.0f} MB are free."
        )
    failures = []
    for url in urls:
        job = _Job(url, part, size, limits, time.monotonic() + limits.deadline, progress)
        try:
            _fetch_verified(job, md5.lower() if md5 else None, max_attempts)
        except _SourceFailed as exc:
            log.warning("%s: %s", url, exc)
            failures.append(f"{url} ({exc})")
            continue
        try:
            os.replace(part, dest)
        except OSError as exc:
            raise DownloadError(f"Cannot move {part} to {dest}: {exc.strerror or exc}.") from exc
        log.info("Saved %s", dest)
        return dest
    raise DownloadError(f"Could not download {dest.name}; tried {'; '.join(failures)}.")


def _fetch_verified(job: _Job, md5: str | None, max_attempts: int) -> None:
    # A resumed file that fails the checksum may owe it to stale bytes from an earlier run,
    # so it gets one fresh start from this URL before the URL counts as bad.
    tries = 2 if _size(job.part) else 1
    for _ in range(tries):
        _fetch(job, max_attempts)
        if md5 is None:
            return
        actual = file_md5(job.part)
        if actual == md5:
            return
        job.part.unlink()
        log.warning("%s: md5 %s, expected %s; discarded", job.url, actual, md5)
    raise _SourceFailed(f"checksum mismatch: md5 {actual}, expected {md5}; file discarded")


def _fetch(job: _Job, max_attempts: int) -> None:
    for _ in range(max_attempts):
        offset = _size(job.part)
        try:
            _transfer(job, offset)
            return
        except _Interrupted as exc:
            if _size(job.part) <= offset:
                raise _SourceFailed(f"connection lost: {exc}") from exc
            log.warning("%s: connection lost at %s bytes (%s); resuming", job.url, _size(job.part), exc)
    raise _SourceFailed(f"connection lost {max_attempts} times")


def _transfer(job: _Job, offset: int) -> None:
    if offset >= job.cap:
        return  # the part file already holds all the file can have: the checksum decides
    headers = {"User-Agent": f"avatarify/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    watchdog = _Watchdog()
    # The whole response header must arrive within the timeout, however slowly a server dribbles it.
    watchdog.arm(min(job.limits.timeout, job.ends - time.monotonic()))
    try:
        try:
            response = _opener(watchdog).open(urllib.request.Request(job.url, headers=headers), timeout=job.limits.timeout)
        except urllib.error.HTTPError as exc:
            return _refused_range(job, offset, exc)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            if watchdog.fired:
                raise _SourceFailed(f"no answer within {job.limits.timeout:g} s") from exc
            raise _SourceFailed(_describe(exc)) from exc
        if watchdog.fired:  # the header was cut short by the watchdog, not ended by the server
            response.close()
            raise _SourceFailed(f"no answer within {job.limits.timeout:g} s")
        watchdog.arm(job.ends - time.monotonic())
        with response:
            offset, total = _response_range(job, response, offset)
            _receive(job, response, offset, total, watchdog)
    finally:
        watchdog.disarm()
    if total is not None and _size(job.part) < total:
        raise _Interrupted(f"got {_size(job.part)} of {total} bytes")


def _refused_range(job: _Job, offset: int, exc: urllib.error.HTTPError) -> None:
    exc.close()
    if exc.code == 416 and offset:
        if _content_range(exc.headers.get("Content-Range"))[1] == offset:
            return  # the part file already holds the whole file
        log.warning("%s: partial file %s does not match the server's file; starting over", job.url, job.part)
        job.part.unlink()
        return _transfer(job, 0)
    raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from exc


def _response_range(job: _Job, response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """(where the body starts in the file, the file's total size as the server declares it), checked."""
    if offset and response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        if start != offset:
            raise _SourceFailed(f"asked for bytes from {offset}, server sent from {start}")
    else:
        if offset:
            log.info("%s: server does not resume downloads; starting over", job.url)
        offset = 0
        length = response.headers.get("Content-Length")
        if length is not None and not (length.isdigit() and len(length) <= 40):
            raise _SourceFailed(f"declares a length of {length[:40]!r}")
        total = int(length) if length is not None else None
    if total is not None:
        # A size that cannot be right is this mirror's failure, not a reason to stop trying the others.
        if job.size is not None and total != job.size:
            raise _SourceFailed(f"declares {total} bytes; the file has {job.size}")
        if total > job.cap:
            raise _SourceFailed(f"declares {total} bytes, more than the {job.cap} accepted")
        if not _fits(job.part, total, offset):
            raise _SourceFailed(f"declares {total} bytes, more than the free disk space")
    return offset, total


def _receive(
    job: _Job, response: http.client.HTTPResponse, offset: int, total: int | None, watchdog: _Watchdog
) -> None:
    """Append the body to the part file as it arrives (whatever the size of each piece), within the limits."""
    rate = _RateCheck(job.limits, offset)
    received = offset
    try:
        # Unbuffered: what has arrived is in the file, for the progress bar and for a resume.
        with open(job.part, "ab" if offset else "wb", buffering=0) as out, tqdm(
            total=total or job.size, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=job.part.name[: -len(PART_SUFFIX)], disable=not job.progress,
        ) as bar:  # fmt: skip
            while received < job.cap:
                chunk = _read(response, min(CHUNK_SIZE, job.cap - received), watchdog, job)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
                rate.check(received)
            os.fsync(out.fileno())  # durable before the caller renames it into place
    except OSError as exc:
        raise DownloadError(f"Cannot write {job.part}: {exc.strerror or exc}.") from exc
    if received >= job.cap and job.size is None and _read(response, 1, watchdog, job):
        job.part.unlink()
        raise _SourceFailed(f"sends more than the {job.cap} bytes accepted; discarded")


def _read(response: http.client.HTTPResponse, limit: int, watchdog: _Watchdog, job: _Job) -> bytes:
    """What has arrived, up to `limit` bytes, without waiting for more than one piece."""
    try:
        chunk = response.read1(limit)
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired:
            raise _SourceFailed(f"did not deliver the file within {job.limits.deadline:g} s") from exc
        raise _Interrupted(_describe(exc)) from exc
    if not chunk and watchdog.fired:
        raise _SourceFailed(f"did not deliver the file within {job.limits.deadline:g} s")
    return chunk


class _RateCheck:
    """Fails a transfer that brings less than `min_rate` bytes a second over any `rate_window` seconds."""

    def __init__(self, limits: TransferLimits, received: int) -> None:
        self.limits = limits
        self.since = time.monotonic()
        self.received = received

    def check(self, received: int) -> None:
        now = time.monotonic()
        elapsed = now - self.since
        if elapsed < self.limits.rate_window:
            return
        rate = (received - self.received) / elapsed
        if rate < self.limits.min_rate:
            raise _SourceFailed(
                f"too slow: {rate:.0f} bytes/s over {elapsed:.0f} s, below the {self.limits.min_rate:.0f} required"
            )
        self.since, self.received = now, received


class _Watchdog:
    """Shuts the connection of a transfer that overruns its time, wherever it is blocked (header or body)."""

    def __init__(self) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            # The plain socket's shutdown (also under TLS): the blocked read returns at once.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class _WatchedHTTPConnection(http.client.HTTPConnection):
    watchdog: _Watchdog

    def connect(self) -> None:
        super().connect()
        self.watchdog.watch(self.sock)


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    watchdog: _Watchdog

    def connect(self) -> None:
        super().connect()
        self.watchdog.watch(self.sock)


def _connection(kind: type, watchdog: _Watchdog, *args, **kwargs) -> http.client.HTTPConnection:
    connection = kind(*args, **kwargs)
    connection.watchdog = watchdog
    return connection


def _opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """urllib as usual (proxies, redirects, TLS), with every connection it opens under `watchdog`."""

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(functools.partial(_connection, _WatchedHTTPConnection, watchdog), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            factory = functools.partial(_connection, _WatchedHTTPSConnection, watchdog)
            return self.do_open(factory, req, context=self._context)

    return urllib.request.build_opener(Http, Https)


def _fits(part: Path, total: int, offset: int | None = None) -> bool:
    """Whether the disk holding `part` has room for the rest of a `total`-byte file."""
    needed = total - (_size(part) if offset is None else offset)
    return shutil.disk_usage(part.parent).free >= needed


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; None where absent or unknown."""
    match = _CONTENT_RANGE.fullmatch((header or "").strip())
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total.isdigit() else None)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[0].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__
