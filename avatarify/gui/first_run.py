"""The panel shown while no model weights are available: download them (with progress) or locate a file."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.download import part_path
from ..model.weights import CHECKPOINT_MD5, CHECKPOINT_NAME, CHECKPOINT_SIZE, download_weights, user_weights_dir
from .tasks import Task

PROGRESS_INTERVAL_MS = 200


@dataclass
class WeightsSource:
    """Where the weights come from and where they go; the defaults are the published checkpoint and its mirrors."""

    dest_dir: Path = field(default_factory=user_weights_dir)
    urls: Sequence[str] | None = None
    md5: str = CHECKPOINT_MD5
    name: str = CHECKPOINT_NAME
    expected_size: int = CHECKPOINT_SIZE

    @property
    def dest(self) -> Path:
        return self.dest_dir / self.name

    def fetch(self) -> Path:
        return download_weights(self.dest_dir, self.urls, self.md5, self.name, progress=False)


class FirstRunPanel(QFrame):
    """Offers the weights download or a file chooser; emits `checkpoint_ready` with the file to load."""

    checkpoint_ready = pyqtSignal(Path)

    def __init__(self, source: WeightsSource | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("firstRun")
        self.source = source or WeightsSource()
        self._task: Task | None = None
        self._progress_timer = QTimer(self)
        self._progress_timer.setInterval(PROGRESS_INTERVAL_MS)
        self._progress_timer.timeout.connect(self._update_progress)

        title = QLabel("Model weights needed", self)
        title.setObjectName("firstRunTitle")
        text = QLabel(
            f"Avatarify animates photos with the First Order Motion Model, whose weights "
            f"({self.source.name}, about {self.source.expected_size / 1e6:.0f} MB, licence CC BY-NC 4.0: "
            f"non-commercial use) are not installed yet. The camera preview and passthrough work meanwhile.",
            self,
        )
        text.setWordWrap(True)
        self.download_button = QPushButton(f"Download weights ({self.source.expected_size / 1e6:.0f} MB)", self)
        self.download_button.setObjectName("primary")
        self.locate_button = QPushButton("Locate file…", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.status = QLabel(f"Saved to {self.source.dest_dir}", self)
        self.status.setWordWrap(True)
        self.status.setObjectName("firstRunStatus")

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.locate_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(text)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.download_button.clicked.connect(self.start_download)
        self.locate_button.clicked.connect(self._choose_file)

    def start_download(self) -> None:
        """Download on a worker thread; progress follows the size of the partial file."""
        if self._task is not None:
            return
        self.download_button.setEnabled(False)
        self.locate_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.status.setText(f"Downloading to {self.source.dest}…")
        self._task = Task(self.source.fetch, self)
        self._task.succeeded.connect(self._downloaded)
        self._task.failed.connect(self._download_failed)
        self._task.done.connect(self._task_finished)
        self._task.start()
        self._progress_timer.start()

    def _update_progress(self) -> None:
        try:
            size = part_path(self.source.dest).stat().st_size
        except FileNotFoundError:
            return
        self.progress.setValue(min(99, round(100 * size / max(1, self.source.expected_size))))

    def _task_finished(self) -> None:
        self._progress_timer.stop()
        self._task = None
        self.download_button.setEnabled(True)
        self.locate_button.setEnabled(True)

    def _downloaded(self, path: Path) -> None:
        self.progress.setValue(100)
        self.status.setText(f"Downloaded {path}. Loading the model…")
        self.checkpoint_ready.emit(Path(path))

    def _download_failed(self, message: str) -> None:
        self.progress.setVisible(False)
        self.status.setText(f"Download failed: {message}")

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Locate the model weights", str(Path.home()), "FOMM checkpoints (*.pth.tar *.pth *.tar);;All files (*)"
        )
        if path:
            self.locate(Path(path))

    def locate(self, path: Path) -> None:
        """Use a checkpoint file the user picked."""
        self.status.setText(f"Loading {path}…")
        self.checkpoint_ready.emit(path)

    def show_problem(self, message: str) -> None:
        """Say why the last checkpoint could not be used, keeping both choices open."""
        self.progress.setVisible(False)
        self.status.setText(message)
