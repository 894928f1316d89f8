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
LIVEPORTRAIT_SIZE = 500_000_000  # about: the five published files, for the progress bar


@dataclass
class WeightsSource:
    """Where the FOMM weights come from and where they go; the defaults are the published checkpoint and its
    mirrors. `partial` is what grows while the download runs."""

    dest_dir: Path = field(default_factory=user_weights_dir)
    urls: Sequence[str] | None = None
    md5: str = CHECKPOINT_MD5
    name: str = CHECKPOINT_NAME
    expected_size: int = CHECKPOINT_SIZE

    @property
    def dest(self) -> Path:
        return self.dest_dir / self.name

    @property
    def partial(self) -> Path:
        return part_path(self.dest)

    def fetch(self) -> Path:
        return download_weights(self.dest_dir, self.urls, self.md5, self.name, progress=False)


@dataclass
class LivePortraitSource:
    """LivePortrait's five published files from the Hugging Face hub, into the user data folder."""

    dest_dir: Path = field(default_factory=lambda: user_weights_dir() / "liveportrait")
    expected_size: int = LIVEPORTRAIT_SIZE

    @property
    def partial(self) -> Path:
        return self.dest_dir

    def fetch(self) -> Path:
        from ..model.liveportrait.weights import download_weights as fetch_liveportrait

        return fetch_liveportrait(self.dest_dir)


def grown(path: Path) -> int:
    """Bytes in a file, or in all the files under a folder (0 for what is not there yet)."""
    if path.is_file():
        return path.stat().st_size
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file()) if path.is_dir() else 0


class WeightsDownload(QObject):
    """One download at a time: `progress(percent)` while bytes arrive, then `finished(path)` or `failed(message)`."""

    progress = pyqtSignal(int)
    finished = pyqtSignal(Path)
    failed = pyqtSignal(str)

    def __init__(self, source: WeightsSource | LivePortraitSource | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source or WeightsSource()
        self._task: Task | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(PROGRESS_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, source: WeightsSource | LivePortraitSource | None = None) -> None:
        """Start downloading `source` (default: the one given at construction); a second call while one runs does
        nothing, and a partial file resumes next time."""
        if self._task is not None:
            return
        self.source = source or self.source
        self._task = Task(self.source.fetch, self)
        self._task.succeeded.connect(lambda path: self.finished.emit(Path(path)))
        self._task.failed.connect(self.failed.emit)
        self._task.done.connect(self._done)
        self._task.start()
        self._timer.start()
        self.progress.emit(0)

    def _poll(self) -> None:
        try:
            size = grown(self.source.partial)
        except OSError:
            return
        self.progress.emit(min(99, round(100 * size / max(1, self.source.expected_size))))

    def _done(self) -> None:
        self._timer.stop()
        self._task = None
