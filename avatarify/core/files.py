"""User files: checking inputs and outputs before any work, and writing so that a crash never leaves a half-written
file in place or destroys an input.

Every check here ends in one `InputError` line: a name too long for the file system, a missing file, a folder or
device where a file belongs, an output that is one of the inputs (through any path, hard link or symbolic link).
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import InputError

# The usual limit of one name's length in bytes, for file systems that do not say theirs.
NAME_MAX = 255
# Paths longer than this are shortened (middle left out) in messages, which stay one readable line.
SHOWN_PATH_CHARS = 120


def shown(path: str | os.PathLike) -> str:
    """A path as a message shows it: as given, with the middle of a very long one left out."""
    text = os.fspath(path)
    if len(text) <= SHOWN_PATH_CHARS:
        return text
    half = SHOWN_PATH_CHARS // 2 - 2
    return f"{text[:half]}...{text[-half:]}"


def name_limit(folder: str | os.PathLike) -> int:
    """The longest name (in bytes) the file system holding `folder` allows."""
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no such folder, or no pathconf (Windows)
        return NAME_MAX


def fit_name(name: str, max_bytes: int) -> str:
    """`name` cut to at most `max_bytes` bytes as the file system stores it."""
    encoded = os.fsencode(name)
    return name if len(encoded) <= max_bytes else os.fsdecode(encoded[:max_bytes])


def temp_path_beside(path: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside `path` for its unfinished version (".NAME-RANDOM" + suffix), never too long for
    the folder however long `path`'s own name is; the random part keeps it unique."""
    token = secrets.token_hex(4)
    room = name_limit(path.parent) - len(os.fsencode(f".-{token}{suffix}"))
    return path.with_name(f".{fit_name(path.stem, room)}-{token}{suffix}")


def _stat(path: Path, what: str) -> os.stat_result | None:
    """`os.stat` (following links); None when nothing is there, InputError for a name the system cannot look up."""
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:  # a NUL character
        raise InputError(f"{what} name {shown(repr(os.fspath(path)))} contains a NUL character.") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
            raise InputError(
                f"{what} name {shown(path)} is too long for the file system ({longest} bytes in one name, "
                f"{len(os.fsencode(path))} in all); choose a shorter name or folder."
            ) from None
        if exc.errno == errno.ELOOP:
            raise InputError(f"{what} {shown(path)} is a symbolic link that leads back to itself.") from None
        raise InputError(f"Cannot look up {what.lower()} {shown(path)} ({exc.strerror}).") from None


def is_regular_file(path: str | os.PathLike) -> bool:
    """Whether `path` is a regular file (following links); False, never an error, for any name that is not one."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def check_input_file(path: str | os.PathLike, what: str = "File") -> os.stat_result:
    """Fail with one line unless `path` is an existing regular file; returns its status (size and identity)."""
    path = Path(path)
    status = _stat(path, what)
    if status is None:
        raise InputError(f"{what} {shown(path)} does not exist.")
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{what} {shown(path)} is a folder, not a file; choose a file.")
    if not stat.S_ISREG(status.st_mode):
        raise InputError(f"{what} {shown(path)} is not a regular file (a device, FIFO or socket); choose a file.")
    return status


def _is_input(status: os.stat_result, inputs: Iterable[str | os.PathLike]) -> Path | None:
    """The input that is the same file as `status` (same device and inode: any path, hard or symbolic link)."""
    for candidate in inputs:
        try:
            other = os.stat(candidate)
        except (OSError, ValueError):
            continue  # an input that cannot be looked up fails later with its own message
        if (other.st_dev, other.st_ino) == (status.st_dev, status.st_ino):
            return Path(candidate)
    return None


def check_writable_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Fail early, with one line, when the output file cannot be created where asked or must not be replaced.

    Refused: a name too long for the folder; a folder, device node, FIFO or socket at the path (`-o /dev/null`
    must never replace /dev/null); the same file as any of `inputs`, through whatever path or link; a folder
    that does not exist or cannot be written to.
    """
    path = Path(path).expanduser()
    folder = path.parent
    folder_status = _stat(folder, "Output folder")
    if folder_status is None or not stat.S_ISDIR(folder_status.st_mode):
        raise InputError(f"Output folder {shown(folder)} does not exist; create it or choose another output file.")
    limit = name_limit(folder)
    if len(os.fsencode(path.name)) > limit:
        raise InputError(
            f"Output name {shown(path.name)} is {len(os.fsencode(path.name))} bytes long; this folder allows names "
            f"of at most {limit}. Choose a shorter name."
        )
    status = _stat(path, "Output")
    if status is not None:
        if stat.S_ISDIR(status.st_mode):
            raise InputError(f"Output {shown(path)} is a folder; give a file name such as {shown(path / 'result.mp4')}.")
        if not stat.S_ISREG(status.st_mode):
            raise InputError(
                f"Output {shown(path)} is not a regular file (a device, FIFO or socket) and will not be replaced; "
                "choose a file name."
            )
        same = _is_input(status, inputs)
        if same is not None:
            raise InputError(
                f"Output {shown(path)} is the input {shown(same)} (the same file); writing it would destroy the "
                "input. Choose another output name."
            )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avatarify-", suffix=".probe"):
            pass
    except OSError as exc:
        raise InputError(
            f"Cannot write to output folder {shown(folder)} ({exc.strerror}); choose another output file."
        ) from exc
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    temp = temp_path_beside(path)
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
