"""The camera picker in the main window: cameras by name, a video file or a folder of images, and what plays."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import QComboBox, QFileDialog, QWidget

from ..pipeline.camera import CameraInfo

VIDEO_FILE = "video-file"
IMAGE_FOLDER = "image-folder"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)"


def spec_label(spec: str, cameras: Sequence[CameraInfo]) -> str:
    """How a camera setting is shown: a camera by its name, a file or folder by its name."""
    text = spec.strip()
    if text.isdigit():
        return next((camera.name for camera in cameras if camera.index == int(text)), f"Camera {text}")
    path = Path(text)
    return path.name or text


class CameraPicker(QComboBox):
    """Emits `chosen(spec)` with a camera index, a video file or an image folder the user picked."""

    chosen = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumContentsLength(12)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLength)
        self._cameras: list[CameraInfo] = []
        self._spec = ""
        self.activated.connect(self._activated)

    @property
    def spec(self) -> str:
        return self._spec

    def set_cameras(self, cameras: Sequence[CameraInfo]) -> None:
        self._cameras = list(cameras)
        self._rebuild()

    def show_playing(self, spec: str) -> None:
        """Show `spec` (the camera in use) as the current choice."""
        self._spec = spec
        self._rebuild()

    def _rebuild(self) -> None:
        self.blockSignals(True)
        self.clear()
        current = None
        for camera in self._cameras:
            self.addItem(camera.name, str(camera.index))
            if self._spec.strip() == str(camera.index):
                current = self.count() - 1
        if not self._cameras:
            self.addItem("No cameras found", None)
            self.model().item(0).setEnabled(False)
        if current is None and self._spec:
            self.addItem(spec_label(self._spec, self._cameras), self._spec)
            current = self.count() - 1
        self.insertSeparator(self.count())
        self.addItem("Video file…", VIDEO_FILE)
        self.addItem("Image folder…", IMAGE_FOLDER)
        if current is not None:
            self.setCurrentIndex(current)
        self.setToolTip(f"Camera: {self._spec} (choose another camera, a video file or a folder of images)"
                        if self._spec else "Choose the camera")  # fmt: skip
        self.blockSignals(False)

    def _activated(self, index: int) -> None:
        value = self.itemData(index)
        if value == VIDEO_FILE:
            value, _ = QFileDialog.getOpenFileName(self, "Play a video file as the camera", str(Path.home()), VIDEO_FILTER)
        elif value == IMAGE_FOLDER:
            value = QFileDialog.getExistingDirectory(self, "Play a folder of images as the camera", str(Path.home()))
        if value and value != self._spec:
            self.chosen.emit(value)
        else:
            self._rebuild()  # cancelled: show the camera in use again

    def choose_file(self) -> None:
        """Open the video file chooser directly (the "Video file…" remedy)."""
        self._activated(self.findData(VIDEO_FILE))
