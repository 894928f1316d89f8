"""The message banner at the top of the window: readable problems instead of crashes."""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


class MessageBanner(QFrame):
    """Shows the latest problem (camera gone, virtual camera missing, bad avatar file, checkpoint problem)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        icon = QLabel("⚠", self)
        icon.setObjectName("bannerIcon")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QPushButton("Dismiss", self)
        close.setObjectName("bannerClose")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.addWidget(icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.setVisible(False)

    @property
    def message(self) -> str:
        """The message shown, or "" when the banner is hidden."""
        return self.label.text() if not self.isHidden() else ""

    def show_message(self, text: str) -> None:
        text = text.strip()
        if not text:
            return
        self.label.setText(text)
        self.setVisible(True)

    def dismiss(self) -> None:
        self.setVisible(False)
