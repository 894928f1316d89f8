"""App → About: the version, the licences, where settings, avatars and weights live (with Open buttons), and the
same diagnostics report `avatarify doctor` prints, to copy into a bug report."""
from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import QUrl
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..core import paths
from .tasks import Task

LICENCES = (
    "avatarify's code: MIT.\n"
    "First Order Motion Model weights (vox-adv-cpk.pth.tar): CC BY-NC 4.0, non-commercial use only, with "
    "attribution to Siarohin et al.; not part of avatarify.\n"
    "LivePortrait's code and weights (Kuaishou): MIT; downloaded on request, not part of avatarify.\n"
    "Bundled avatar: public domain (see avatars/README.md)."
)


def folders(settings_file: Path | None = None) -> dict[str, Path]:
    """The places a user may want to open: settings, avatars, weights."""
    return {
        "Settings": (settings_file or paths.settings_path()).parent,
        "Avatars": paths.user_avatar_dir(),
        "Weights": paths.user_weights_dir(),
    }


class AboutDialog(QDialog):
    """Version and licences, the folders avatarify keeps its files in (`open_buttons` open them), and the
    diagnostics report, made in the background by `report` (text in, shown when it comes)."""

    def __init__(
        self, settings_file: Path | None = None, parent: QWidget | None = None, report: Callable[[], str] | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("About avatarify")
        title = QLabel(f"avatarify {__version__}", self)
        title.setObjectName("firstRunTitle")
        system = QLabel(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}", self)
        licences = QLabel(LICENCES, self)
        licences.setWordWrap(True)
        form = QFormLayout()
        self.open_buttons: dict[str, QPushButton] = {}
        for name, folder in folders(settings_file).items():
            row = QHBoxLayout()
            label = QLabel(str(folder), self)
            label.setObjectName("hint")
            button = QPushButton("Open", self)
            button.clicked.connect(lambda _checked=False, f=folder: self.open_folder(f))
            self.open_buttons[name] = button
            row.addWidget(label, 1)
            row.addWidget(button)
            form.addRow(name, row)
        self.report = QPlainTextEdit("Gathering the diagnostics…", self)
        self.report.setReadOnly(True)
        self.report.setMinimumHeight(180)
        self.copy_button = QPushButton("Copy the diagnostics", self)
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.report.toPlainText()))
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (title, system, licences):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(QLabel("Diagnostics (what `avatarify doctor` prints; paste it into a bug report):", self))
        layout.addWidget(self.report, 1)
        layout.addWidget(self.copy_button)
        layout.addWidget(buttons)
        self.resize(760, 620)
        if report is not None:
            self._task = Task(report, self)
            self._task.succeeded.connect(self._show_report)
            self._task.failed.connect(lambda message: self._show_report(f"The diagnostics failed: {message}"))
            self._task.start()

    def _show_report(self, text: str) -> None:
        self.report.setPlainText(text)
        self.copy_button.setEnabled(True)

    @staticmethod
    def open_folder(folder: Path) -> bool:
        """Show `folder` in the system's file manager (created first, so there is something to show)."""
        folder.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
