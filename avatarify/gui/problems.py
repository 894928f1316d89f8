"""Every current problem at once, each with its remedies, floating over the previews so nothing moves.

One row per failed component (camera, model, worker, landmarks, virtual camera): its one-line message,
a button per remedy, the details on request (with the setup command to copy), and Dismiss. A row goes away when
its problem is solved and comes back when a problem returns, even one dismissed before. Notices (a picture that
could not be added, a hint after the model loaded) are rows of their own.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.status import ComponentStatus, Remedy

MAX_NOTICES = 3
NAMES = {"camera": "Camera", "model": "Model", "worker": "Worker", "landmarks": "Landmarks", "vcam": "Virtual camera"}


class ProblemRow(QFrame):
    """One problem: icon, message, remedy buttons, details, dismiss."""

    remedy = pyqtSignal(object)  # Remedy

    def __init__(self, key: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key = key
        self.setObjectName("problem")
        self.icon = QLabel("⚠", self)
        self.icon.setObjectName("problemIcon")
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.buttons = QHBoxLayout()
        self.details_button = QPushButton("Details", self)
        self.details_button.setCheckable(True)
        self.dismiss_button = QPushButton("Dismiss", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.details = QPlainTextEdit(self)
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(110)
        self.details.hide()
        self.copy_button = QPushButton("Copy setup command", self)
        self.copy_button.hide()
        self.command = ""
        self.on_dismiss = self.hide
        top = QHBoxLayout()
        top.addWidget(self.icon)
        top.addWidget(self.label, 1)
        top.addLayout(self.buttons)
        top.addWidget(self.details_button)
        top.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.details)
        layout.addWidget(self.copy_button)
        self.details_button.toggled.connect(self._show_details)
        self.dismiss_button.clicked.connect(lambda: self.on_dismiss())
        self.copy_button.clicked.connect(lambda: QApplication.clipboard().setText(self.command))

    @property
    def remedy_buttons(self) -> dict[Remedy, QPushButton]:
        buttons = (self.buttons.itemAt(i).widget() for i in range(self.buttons.count()))
        return {button.property("remedy"): button for button in buttons}

    def show_problem(self, text: str, remedies: tuple[Remedy, ...] = (), detail: str = "", command: str = "") -> None:
        self.label.setText(text)
        while self.buttons.count():
            self.buttons.takeAt(0).widget().deleteLater()
        for remedy in remedies:
            button = QPushButton(remedy.value, self)
            button.setProperty("remedy", remedy)
            button.setObjectName("primary")
            button.clicked.connect(lambda _checked=False, r=remedy: self.remedy.emit(r))
            self.buttons.addWidget(button)
        self.details.setPlainText(detail)
        self.command = command
        self.details_button.setVisible(bool(detail or command))
        self._show_details(self.details_button.isChecked())

    def _show_details(self, shown: bool) -> None:
        self.details.setVisible(shown and bool(self.details.toPlainText()))
        self.copy_button.setVisible(shown and bool(self.command))
        if self.parentWidget() is not None:
            self.parentWidget().adjustSize()


class ProblemPanel(QWidget):
    """The rows of current problems and notices; `remedy(component, Remedy)` when the user picks one."""

    remedy = pyqtSignal(str, object)
    changed = pyqtSignal()  # rows came or went: whoever places the panel may place it again

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("problems")
        self.rows: dict[str, ProblemRow] = {}
        self._dismissed: dict[str, ComponentStatus] = {}
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._notices = 0
        self.hide()

    @property
    def messages(self) -> list[str]:
        """The texts of the rows shown, problems first, for tests and screen readers."""
        return [row.label.text() for row in self.rows.values() if not row.isHidden()]

    def show_status(self, component: str, status: ComponentStatus) -> None:
        """Show `component`'s problem, or remove its row once it is solved."""
        if not status.failed:
            self._dismissed.pop(component, None)
            self._remove(component)
            return
        if self._dismissed.get(component) == status:
            return  # dismissed, and not changed since
        self._dismissed.pop(component, None)
        row = self._row(component)
        row.show_problem(status.message, status.remedies, status.detail, status.command)
        row.setToolTip(NAMES.get(component, component))
        row.on_dismiss = lambda: self._dismiss(component, status)
        self._update()

    def notice(self, text: str, key: str | None = None) -> None:
        """A message that is not a component's state (it stays until dismissed or replaced by its key)."""
        if key is None:
            self._notices = (self._notices + 1) % MAX_NOTICES
            key = f"notice-{self._notices}"
        row = self._row(key)
        row.icon.setText("ℹ" if key == "hint" else "⚠")
        row.setObjectName("notice" if key == "hint" else "problem")
        row.style().unpolish(row)
        row.style().polish(row)
        row.show_problem(text)
        row.on_dismiss = lambda: self._remove(key)
        self._update()

    def clear_notice(self, key: str) -> None:
        self._remove(key)

    def row(self, key: str) -> ProblemRow | None:
        return self.rows.get(key)

    def _row(self, key: str) -> ProblemRow:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = ProblemRow(key, self)
            row.remedy.connect(lambda remedy, k=key: self.remedy.emit(k, remedy))
            self._layout.addWidget(row)
        row.show()
        return row

    def _dismiss(self, component: str, status: ComponentStatus) -> None:
        self._dismissed[component] = status
        self._remove(component)

    def _remove(self, key: str) -> None:
        row = self.rows.pop(key, None)
        if row is not None:
            row.hide()
            row.deleteLater()
        self._update()

    def _update(self) -> None:
        self.setVisible(bool(self.rows))
        self.adjustSize()
        self.raise_()
        self.changed.emit()
