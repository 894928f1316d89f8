"""Reading driving videos and writing mp4 files (H.264 through the ffmpeg that imageio-ffmpeg ships)."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import imageio_ffmpeg
import numpy as np

from .errors import InputError
from .files import check_input_file, shown, temp_path_beside

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


def media_path(path: str | os.PathLike, what: str = "Video") -> str:
    """The path as OpenCV and ffmpeg get it: absolute, and only if OpenCV can take it safely.

    OpenCV crashes the whole process (a segmentation fault) on a name that is not valid UTF-8, so such a name is
    refused with one line. An absolute path also keeps ffmpeg from reading a relative name such as
    "http:/x.mp4" as a URL.
    """
    text = os.path.abspath(os.fspath(path))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{what} {shown(repr(os.fspath(path)))}: the file name is not valid UTF-8, which OpenCV cannot open; "
            "rename the file."
        ) from None
    return text


def has_audio_stream(path: Path) -> bool:
    """Whether ffmpeg sees an audio stream in the file."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", media_path(path)],
        capture_output=True,
        text=True,
        errors="replace",
    )
    return re.search(r"Stream #\S+.*: Audio:", result.stderr) is not None


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and read its fps, frame count, size and whether it has audio."""
    path = Path(path)
    check_input_file(path, "Video")
    capture = cv2.VideoCapture(media_path(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise InputError(f"{shown(path)} is not a readable video or has no frames; choose another driving video.")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if not fps or fps != fps or fps <= 0:
        fps = 25.0
        log.warning("%s does not state its frame rate; assuming %.0f fps.", shown(path), fps)
    height, width = frame.shape[:2]
    return VideoInfo(path, float(fps), max(frame_count, 1), width, height, has_audio_stream(path))


def read_frames(path: str | os.PathLike, step: int = 1) -> Iterator[np.ndarray]:
    """Every `step`-th frame of a video as RGB uint8, in order (the others are skipped, not converted)."""
    capture = cv2.VideoCapture(media_path(path))
    try:
        index = 0
        while capture.grab():
            if index % step == 0:
                ok, frame = capture.retrieve()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


class Mp4Writer:
    """Writes RGB frames to an H.264 mp4, optionally with another file's audio track, atomically.

    Frames are piped to the ffmpeg that imageio-ffmpeg ships and go to a temporary file beside the
    target, which replaces the target only on `commit()` once ffmpeg reports success; closing without
    committing (an error, Ctrl-C) leaves nothing at the target.
    """

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: Path | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.audio_from = audio_from
        # ffmpeg creates the file itself, so it gets the user's usual permissions (not mkstemp's 0600).
        self._temp = temp_path_beside(self.path, ".mp4")
        self._process: subprocess.Popen | None = None
        # ffmpeg's messages go to a file, not a pipe: an unread pipe could fill up and stall it.
        self._log = tempfile.TemporaryFile()
        self.frames_written = 0

    def _start(self, width: int, height: int) -> subprocess.Popen:
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{self.fps:.6g}",
                   "-i", "-"]
        if self.audio_from is not None:
            command += ["-i", media_path(self.audio_from), "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-shortest"]
        # An absolute path: ffmpeg must not take a relative output name such as "http:/x.mp4" for a URL.
        command += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", os.path.abspath(self._temp)]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame; all frames must have the size of the first."""
        if self._process is None:
            self._process = self._start(frame.shape[1], frame.shape[0])
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError as exc:  # ffmpeg stopped: its log says why
            raise self._failure() from exc
        self.frames_written += 1

    def _failure(self) -> InputError:
        if self._process is not None:
            self._process.wait()
        self._log.seek(0)
        lines = self._log.read().decode(errors="replace").strip().splitlines()
        reason = lines[-1].split("] ")[-1] if lines else "ffmpeg stopped"
        return InputError(f"Writing {shown(self.path)} failed ({reason}); check the free disk space and the folder.")

    def commit(self) -> Path:
        """Finish encoding and move the file into place."""
        if self._process is None:
            raise InputError("No frames were produced; nothing was written.")
        process, self._process = self._process, None
        try:
            process.stdin.close()
        except OSError:
            pass  # ffmpeg already stopped; its exit status tells
        if process.wait() != 0:
            self._process = process
            raise self._failure()
        os.replace(self._temp, self.path)
        return self.path

    def close(self) -> None:
        """Abandon an uncommitted file; never raises (it runs while another error is on its way out)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        self._log.close()
        try:
            self._temp.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("Could not remove the unfinished %s: %s", shown(self._temp), exc.strerror or exc)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
