"""Resumable, checksum-verified, atomic HTTP downloads from a list of mirrors."""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .. import __version__
from .errors import AvatarifyError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
PART_SUFFIX = ".part"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)")


class DownloadError(AvatarifyError):
    """A download failed everywhere it was tried, or its file could not be written."""


class _SourceFailed(Exception):
    """This URL cannot deliver the file; the next mirror may."""


class _Interrupted(Exception):
    """The transfer stopped early; what arrived stays in the part file."""


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
    timeout: float = 30.0,
    max_attempts: int = 5,
    progress: bool = True,
) -> Path:
    """Fetch `dest` from the first URL that delivers it intact, and move it into place atomically.

    Bytes arrive in `dest` + ".part", which survives failures so that the next call resumes it with an
    HTTP Range request. A dropped connection is resumed up to `max_attempts` times per URL while it still
    makes progress. With `md5`, a file with another checksum is discarded and never reaches `dest`.
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
    failures = []
    for url in urls:
        try:
            _fetch_verified(url, part, md5.lower() if md5 else None, timeout, max_attempts, progress)
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


def _fetch_verified(url: str, part: Path, md5: str | None, timeout: float, max_attempts: int, progress: bool) -> None:
    # A resumed file that fails the checksum may owe it to stale bytes from an earlier run,
    # so it gets one fresh start from this URL before the URL counts as bad.
    tries = 2 if _size(part) else 1
    for _ in range(tries):
        _fetch(url, part, timeout, max_attempts, progress)
        if md5 is None:
            return
        actual = file_md5(part)
        if actual == md5:
            return
        part.unlink()
        log.warning("%s: md5 %s, expected %s; discarded", url, actual, md5)
    raise _SourceFailed(f"checksum mismatch: md5 {actual}, expected {md5}; file discarded")


def _fetch(url: str, part: Path, timeout: float, max_attempts: int, progress: bool) -> None:
    for _ in range(max_attempts):
        offset = _size(part)
        try:
            _transfer(url, part, offset, timeout, progress)
            return
        except _Interrupted as exc:
            if _size(part) <= offset:
                raise _SourceFailed(f"connection lost: {exc}") from exc
            log.warning("%s: connection lost at %s bytes (%s); resuming", url, _size(part), exc)
    raise _SourceFailed(f"connection lost {max_attempts} times")


def _transfer(url: str, part: Path, offset: int, timeout: float, progress: bool) -> None:
    headers = {"User-Agent": f"avatarify/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            if _content_range(exc.headers.get("Content-Range"))[1] == offset:
                return  # the part file already holds the whole file
            log.warning("%s: partial file %s does not match the server's file; starting over", url, part)
            part.unlink()
            return _transfer(url, part, 0, timeout, progress)
        raise _SourceFailed(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        raise _SourceFailed(_describe(exc)) from exc
    with response:
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                raise _SourceFailed(f"asked for bytes from {offset}, server sent from {start}")
        else:
            if offset:
                log.info("%s: server does not resume downloads; starting over", url)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        _check_space(part, total, offset)
        _receive(response, part, offset, total, progress)
    if total is not None and _size(part) < total:
        raise _Interrupted(f"got {_size(part)} of {total} bytes")


def _receive(response: http.client.HTTPResponse, part: Path, offset: int, total: int | None, progress: bool) -> None:
    try:
        with open(part, "ab" if offset else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[: -len(PART_SUFFIX)], disable=not progress,
        ) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(_describe(exc)) from exc
                if not chunk:
                    break
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            # Durable before the caller renames it into place.
            os.fsync(out.fileno())
    except OSError as exc:
        raise DownloadError(f"Cannot write {part}: {exc.strerror or exc}.") from exc


def _check_space(part: Path, total: int | None, offset: int) -> None:
    if total is None:
        return
    free = shutil.disk_usage(part.parent).free
    if free < total - offset:
        raise DownloadError(
            f"Not enough disk space in {part.parent}: the download needs {(total - offset) / 1e6:.0f} MB, "
            f"{free / 1e6:.0f} MB are free."
        )


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
