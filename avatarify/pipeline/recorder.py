"""Recording the output to a video file."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.files import check_writable_output
from ..core.video import Mp4Writer
from .vcam import even_size, fit_frame

log = logging.getLogger(__name__)


class Recorder:
    """Writes RGB frames to an H.264 MP4 file at `fps`; the size is set by the first frame.

    Frames go to a hidden partial file that replaces `path` only on `close`, so an existing
    file is never left half-written. `inputs` are files the recording must never replace (the camera's video
    file): naming one of them, through any path or link, is refused, as is a device or FIFO.
    """

    def __init__(self, path: str | Path, fps: float = 25.0, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.path = check_writable_output(path, inputs)
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise InputError(f"Cannot record to {self.path}: use a .mp4 file name.")
        self.fps = fps
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        self._writer: Mp4Writer | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append an RGB uint8 frame (fitted to the first frame's size)."""
        if self._writer is None:
            self.size = even_size((frame.shape[1], frame.shape[0]))
            self._writer = Mp4Writer(self.path, self.fps)
        self._writer.write(fit_frame(frame, self.size))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file; a recording without frames leaves no file behind."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.commit()
        finally:
            writer.close()
        log.info("Recorded %d frames to %s", self.frames_written, self.path)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
