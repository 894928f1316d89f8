"""Downloading the model weights from the window, with progress, off the GUI thread."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from ..core.download import part_path
from ..core.paths import user_weights_dir
from ..model.weights import CHECKPOINT_MD5, CHECKPOINT_NAME, CHECKPOINT_SIZE, download_weights
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


class WeightsDownload(QObject):
    """One download at a time: `progress(percent)` while bytes arrive, then `finished(path)` or `failed(message)`."""

    progress = pyqtSignal(int)
    finished = pyqtSignal(Path)
    failed = pyqtSignal(str)

    def __init__(self, source: WeightsSource | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source or WeightsSource()
        self._task: Task | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PROGRESS_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Start downloading (a second call while one runs does nothing); the partial file resumes next time."""
        if self._task is not None:
            return
        self._task = Task(self.source.fetch, self)
        self._task.succeeded.connect(lambda path: self.finished.emit(Path(path)))
        self._task.failed.connect(self.failed.emit)
        self._task.done.connect(self._done)
        self._task.start()
        self._timer.start()
        self.progress.emit(0)

    def _poll(self) -> None:
        try:
            size = part_path(self.source.dest).stat().st_size
        except FileNotFoundError:
            return
        self.progress.emit(min(99, round(100 * size / max(1, self.source.expected_size))))

    def _done(self) -> None:
        self._timer.stop()
        self._task = None
