"""Recording the output to a video file."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .vcam import even_size, fit_frame

log = logging.getLogger(__name__)

FOURCC = "mp4v"


class Recorder:
    """Writes RGB frames to an MP4 (mp4v) file at `fps`; the size is set by the first frame.

    Frames go to a hidden partial file that replaces `path` only on `close`, so an existing
    file is never left half-written.
    """

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path = Path(path).expanduser()
        if not self.path.parent.is_dir():
            raise InputError(f"Cannot record to {self.path}: folder {self.path.parent} does not exist.")
        if self.path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
            raise InputError(f"Cannot record to {self.path}: use a .mp4 file name.")
        self.fps = fps
        self.frames_written = 0
        self.size: tuple[int, int] | None = None
        self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append an RGB uint8 frame (fitted to the first frame's size)."""
        if self._writer is None:
            self.size = even_size((frame.shape[1], frame.shape[0]))
            writer = cv2.VideoWriter(str(self._partial), cv2.VideoWriter_fourcc(*FOURCC), self.fps, self.size)
            if not writer.isOpened():
                raise InputError(f"Cannot write a video to {self.path}; check the folder's permissions.")
            self._writer = writer
        self._writer.write(cv2.cvtColor(fit_frame(frame, self.size), cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file; a recording without frames leaves no file behind."""
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        os.replace(self._partial, self.path)
        log.info("Recorded %d frames to %s", self.frames_written, self.path)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
