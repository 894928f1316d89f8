"""Where and how a client reaches a worker: address, keys, how frames travel. Checked when made, so a bad value is
one line before anything connects."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import AvatarifyError
from .protocol import DEFAULT_JPEG_QUALITY, ENCODINGS


@dataclass(frozen=True)
class RemoteOptions:
    """A worker at `address` (tcp://HOST:PORT), with CurveZMQ keys from `keys_dir` (None: no keys), frames sent as
    `transport` ("jpeg" or "raw") at `jpeg_quality`."""

    address: str
    keys_dir: Path | None = None
    transport: str = "jpeg"
    jpeg_quality: int = DEFAULT_JPEG_QUALITY

    def __post_init__(self) -> None:
        parts = urlsplit(self.address)
        try:
            port = parts.port
        except ValueError:  # not a number, or out of range
            port = None
        if parts.scheme != "tcp" or port is None or not parts.hostname:
            raise AvatarifyError(f"--worker {self.address}: give the worker's address as tcp://HOST:PORT.")
        if self.transport not in ENCODINGS:
            raise AvatarifyError(f"--worker-transport {self.transport}: choose one of {', '.join(ENCODINGS)}.")
        if not 1 <= self.jpeg_quality <= 100:
            raise AvatarifyError(f"--worker-jpeg-quality {self.jpeg_quality}: choose a quality from 1 to 100.")
