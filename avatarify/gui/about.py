"""Help → About: the version, the licences, and where settings, avatars and weights live (with Open buttons)."""
from __future__ import annotations

import platform
from pathlib import Path

from PyQt5.QtCore import QUrl
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from .. import __version__
from ..core import paths

LICENCES = (
    "avatarify's code: MIT.\n"
    "First Order Motion Model weights (vox-adv-cpk.pth.tar): CC BY-NC 4.0, non-commercial use only, with "
    "attribution to Siarohin et al.; not part of avatarify.\n"
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
    """Version and licences, and the folders avatarify keeps its files in; `open_buttons` open them."""

    def __init__(self, settings_file: Path | None = None, parent: QWidget | None = None) -> None:
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
        buttons = QDialogButtonBox(QDialogButtonBox.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (title, system, licences):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(buttons)

    @staticmethod
    def open_folder(folder: Path) -> bool:
        """Show `folder` in the system's file manager (created first, so there is something to show)."""
        folder.mkdir(parents=True, exist_ok=True)
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
