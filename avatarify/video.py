"""Reading driving videos and writing mp4 files (H.264 through the ffmpeg that imageio-ffmpeg ships)."""
from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import imageio_ffmpeg
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the animation needs to know about a driving video."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    has_audio: bool


def has_audio_stream(path: Path) -> bool:
    """Whether ffmpeg sees an audio stream in the file."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    return re.search(r"Stream #\S+.*: Audio:", result.stderr) is not None


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and read its fps, frame count, size and whether it has audio."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Video {path} does not exist.")
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise InputError(f"{path} is not a readable video or has no frames; choose another driving video.")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if not fps or fps != fps or fps <= 0:
        fps = 25.0
        log.warning("%s does not state its frame rate; assuming %.0f fps.", path, fps)
    height, width = frame.shape[:2]
    return VideoInfo(path, float(fps), max(frame_count, 1), width, height, has_audio_stream(path))


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video as RGB uint8, in order."""
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def check_writable_output(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, when the output file cannot be created where asked."""
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"Output {path} is a folder; give a file name such as {path / 'result.mp4'}.")
    if not folder.is_dir():
        raise InputError(f"Output folder {folder} does not exist; create it or choose another -o path.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".avatarify-", suffix=".probe"):
            pass
    except OSError as exc:
        raise InputError(f"Cannot write to output folder {folder} ({exc.strerror}); choose another -o path.") from exc
    return path


class Mp4Writer:
    """Writes RGB frames to an H.264 mp4, optionally with another file's audio track, atomically.

    Frames go to a temporary file beside the target, which replaces the target only on
    `commit()`; closing without committing (an error, Ctrl-C) leaves nothing at the target.
    """

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: Path | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.audio_from = audio_from
        # ffmpeg creates the file itself, so it gets the user's usual permissions (not mkstemp's 0600).
        self._temp = self.path.with_name(f".{self.path.stem}-{secrets.token_hex(4)}.mp4")
        self._writer = None
        self.frames_written = 0

    def _start(self, width: int, height: int):
        output_params = ["-shortest"] if self.audio_from is not None else []
        writer = imageio_ffmpeg.write_frames(
            str(self._temp),
            (width, height),
            fps=self.fps,
            codec="libx264",
            quality=8,
            macro_block_size=1,
            output_params=output_params,
            audio_path=str(self.audio_from) if self.audio_from is not None else None,
            audio_codec="aac" if self.audio_from is not None else None,
        )
        writer.send(None)
        return writer

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame; all frames must have the size of the first."""
        if self._writer is None:
            self._writer = self._start(frame.shape[1], frame.shape[0])
        self._writer.send(np.ascontiguousarray(frame))
        self.frames_written += 1

    def commit(self) -> Path:
        """Finish encoding and move the file into place."""
        if self._writer is None:
            raise InputError("No frames were produced; nothing was written.")
        self._writer.close()
        self._writer = None
        os.replace(self._temp, self.path)
        return self.path

    def close(self) -> None:
        """Abandon an uncommitted file."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the partial file is deleted either way
                log.debug("ffmpeg did not close cleanly while abandoning %s", self._temp, exc_info=True)
            self._writer = None
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
