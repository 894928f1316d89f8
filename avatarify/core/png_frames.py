"""Writing a rendered clip as a folder of lossless PNG frames (000001.png, ...), all at once or not at all.

Frames go to a hidden sibling folder that takes the target's name only when the clip is complete, so an error or
Ctrl-C never leaves half a frame set. An existing target is replaced only when it is empty or is a frames folder
written here before (it carries our marker file and nothing but frames); anything else is refused.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .files import name_limit, shown, temp_path_beside

MARKER = ".avatarify-frames"
FRAME_NAME = re.compile(r"\d{6}\.png")


def names_a_folder(output: str) -> bool:
    """Whether an output path as typed means a frames folder: it ends with a slash, is a folder, or has no
    extension (an mp4 needs one)."""
    path = Path(output).expanduser()
    return output.endswith(("/", os.sep)) or os.path.isdir(path) or not path.suffix


def is_ours(folder: Path) -> bool:
    """Whether `folder` is a frames folder written here: our marker and nothing but numbered PNG frames."""
    names = [entry.name for entry in folder.iterdir()]
    return MARKER in names and all(name == MARKER or FRAME_NAME.fullmatch(name) for name in names)


def _replaceable(folder: Path) -> bool:
    return not os.path.lexists(folder) or (os.path.isdir(folder) and (not any(folder.iterdir()) or is_ours(folder)))


def check_frames_folder(folder: str | os.PathLike) -> Path:
    """Fail early, with a clear message, when the frames cannot be written to `folder`."""
    folder = Path(folder).expanduser().absolute()
    if not folder.name:
        raise InputError(f"Output {folder} is a file system root; give a folder for the frames.")
    if not os.path.isdir(folder.parent):
        raise InputError(f"Folder {shown(folder.parent)} does not exist; create it or choose another output folder.")
    if len(os.fsencode(folder.name)) > name_limit(folder.parent):
        raise InputError(f"Output folder name is {len(os.fsencode(folder.name))} bytes long, more than this file "
                         "system allows; choose a shorter name.")  # fmt: skip
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise InputError(f"Output {folder} is a file; give a folder for PNG frames or a .mp4 file name.")
    if not _replaceable(folder):
        raise InputError(
            f"Output folder {folder} is not empty; choose a new or empty folder (frames avatarify wrote there "
            "before are replaced)."
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder.parent, prefix=".avatarify-", suffix=".probe"):
            pass
    except OSError as exc:
        raise InputError(f"Cannot write to {folder.parent} ({exc.strerror}); choose another output folder.") from exc
    return folder


class PngFramesWriter:
    """Writes RGB frames as numbered PNG files into a temporary sibling folder, moved into place on `commit()`."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder)
        # Cut to fit beside a name as long as the file system allows, which `check_frames_folder` accepts.
        self._temp = temp_path_beside(self.path, ".partial")
        try:
            self._temp.mkdir()
        except OSError as exc:
            raise InputError(f"Cannot write to {self.path.parent} ({exc.strerror}); choose another folder.") from exc
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Append one RGB uint8 frame."""
        ok, data = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if not ok:
            raise InputError(f"Could not encode frame {self.frames_written + 1} as PNG.")
        target = self._temp / f"{self.frames_written + 1:06d}.png"
        try:
            target.write_bytes(data.tobytes())
        except OSError as exc:
            raise InputError(
                f"Writing {self.path} failed ({exc.strerror or exc}); check the free disk space and the folder."
            ) from exc
        self.frames_written += 1

    def commit(self) -> Path:
        """Move the complete frame set into place, replacing an empty folder or earlier frames of ours."""
        if self.frames_written == 0:
            raise InputError("No frames were produced; nothing was written.")
        try:
            (self._temp / MARKER).write_text("PNG frames written by avatarify; replaced when rendered again.\n")
            self._move_into_place()
        except OSError as exc:
            raise InputError(f"Could not put the frames in place at {self.path} ({exc.strerror or exc}).") from exc
        return self.path

    def _move_into_place(self) -> None:
        if not _replaceable(self.path):
            raise InputError(f"Output folder {self.path} was filled meanwhile; nothing was replaced.")
        old = None
        if self.path.exists():
            old = temp_path_beside(self.path, ".old")
            os.rename(self.path, old)
        try:
            os.rename(self._temp, self.path)
        except OSError:
            if old is not None:
                os.rename(old, self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        """Abandon an uncommitted frame set."""
        shutil.rmtree(self._temp, ignore_errors=True)

    def __enter__(self) -> "PngFramesWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
