"""The camera preview and the avatar output side by side, sized to their pictures so no pane shows empty bars."""
from __future__ import annotations

from PyQt5.QtCore import QRect, Qt
from PyQt5.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget

from .frame_view import FrameView

PANE_SPACING = 10
TITLE_HEIGHT = 20
PANE_MARGIN = 8
TOP_MARGIN = 4
TITLE_GAP = 2
# A pane's height beyond its view's: top margin, title, gap, bottom margin.
PANE_EXTRA_HEIGHT = TOP_MARGIN + TITLE_HEIGHT + TITLE_GAP + PANE_MARGIN


class Pane(QFrame):
    """A titled frame around one FrameView."""

    def __init__(self, title: str, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("pane")
        self.title = QLabel(title, self)
        self.title.setObjectName("paneTitle")
        self.title.setFixedHeight(TITLE_HEIGHT)
        self.view = FrameView(placeholder, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(PANE_MARGIN, TOP_MARGIN, PANE_MARGIN, PANE_MARGIN)
        layout.setSpacing(TITLE_GAP)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)


class PreviewPanes(QWidget):
    """Places the camera and output panes so each one's view has its picture's shape, as large as fits.

    The pair is centred; what is left over stays around it, not inside the panes. The statistics overlay sits
    on the camera view (readable text, not drawn into the camera's pixels).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.camera = Pane("Camera", "Waiting for the camera…", self)
        self.output = Pane("Avatar output", "The avatar appears here", self)
        self.stats = QLabel(self.camera.view)
        self.stats.setObjectName("statsOverlay")
        self.stats.setTextFormat(Qt.PlainText)
        self.stats.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.stats.hide()
        self._aspects = (4 / 3, 1.0)
        self.overlay: QWidget | None = None  # floats across the top, over the panes
        self.setMinimumSize(240, 120)

    def set_aspects(self, camera: float, output: float) -> None:
        """The width/height ratios of the two pictures; the panes follow them."""
        if (camera, output) != self._aspects:
            self._aspects = (camera, output)
            self._place()

    def show_stats(self, lines: list[str] | None) -> None:
        """Show the statistics over the camera view (None hides them)."""
        if lines is None:
            self.stats.hide()
            return
        self.stats.setText("\n".join(lines))
        self.stats.adjustSize()
        self.stats.move(8, 8)
        self.stats.show()
        self.stats.raise_()

    def set_overlay(self, widget: QWidget) -> None:
        """Float `widget` across the top of the panes (it never takes room from them)."""
        widget.setParent(self)
        self.overlay = widget
        self._place()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        width, height = self.width(), self.height()
        extra_w, extra_h = 2 * PANE_MARGIN, PANE_EXTRA_HEIGHT
        camera, output = self._aspects
        # The tallest view height at which both panes, with their frames, fit side by side.
        view_h = min(height - extra_h, (width - PANE_SPACING - 2 * extra_w) / (camera + output))
        view_h = max(view_h, 1.0)
        widths = [round(view_h * camera) + extra_w, round(view_h * output) + extra_w]
        pane_h = round(view_h) + extra_h
        x = (width - sum(widths) - PANE_SPACING) // 2
        y = (height - pane_h) // 2
        self.camera.setGeometry(QRect(x, y, widths[0], pane_h))
        self.output.setGeometry(QRect(x + widths[0] + PANE_SPACING, y, widths[1], pane_h))
        self.place_overlay()

    def place_overlay(self) -> None:
        if self.overlay is None:
            return
        left = self.camera.geometry().left()
        width = self.output.geometry().right() - left
        self.overlay.setFixedWidth(max(200, min(self.width(), width)))
        self.overlay.adjustSize()
        self.overlay.move(max(0, (self.width() - self.overlay.width()) // 2), self.camera.geometry().top() + TOP_MARGIN + TITLE_HEIGHT)
        self.overlay.raise_()
