"""Writing user files so that a crash never leaves a half-written one in place."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def check_writable_output(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, when the output file cannot be created where asked."""
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise InputError(f"Output {path} is a folder; give a file name such as {path / 'result.mp4'}.")
    if not folder.is_dir():
        raise InputError(f"Output folder {folder} does not exist; create it or choose another output file.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avatarify-", suffix=".probe"):
            pass
    except OSError as exc:
        raise InputError(f"Cannot write to output folder {folder} ({exc.strerror}); choose another output file.") from exc
    return path
