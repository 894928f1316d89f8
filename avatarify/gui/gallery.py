"""The avatar gallery: thumbnails in a stable order; click to drive, drag to reorder, add (dialog or drop), remove,
reload."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PyQt5.QtCore import QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QIcon, QPixmap
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import AvatarifyError
from ..core.images import read_image
from ..pipeline.camera import IMAGE_SUFFIXES
from ..session.avatars import AvatarChoice
from .crop_editor import CropEditor
from .frame_view import to_pixmap
from .hotkeys import tooltip

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 88
NOT_REMOVABLE = "Avatars that come with the app cannot be removed; only the ones you added."


def image_files(paths: list[Path]) -> list[Path]:
    """The picture files among dropped paths."""
    return [path for path in paths if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]


def dropped_paths(event) -> list[Path]:
    return [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]


class GalleryList(QListWidget):
    """Thumbnails the user can drag into another order; files dropped from outside go to `files_dropped`."""

    moved = pyqtSignal(int, int)
    files_dropped = pyqtSignal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.IconMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Snap)
        self.setResizeMode(QListView.Adjust)
        self.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.setGridSize(QSize(THUMBNAIL_SIDE + 44, THUMBNAIL_SIDE + 30))
        self.setFixedHeight(THUMBNAIL_SIDE + 52)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setDragDropMode(QAbstractItemView.InternalMove)
        self.setDefaultDropAction(Qt.MoveAction)
        self.setFocusPolicy(Qt.NoFocus)  # arrow keys belong to the avatar hotkeys

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.source() is self:
            super().dragEnterEvent(event)
        elif dropped_paths(event):
            # Any local file is accepted so that a wrong one gets an explanation rather than a "no entry" cursor.
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.source() is self:
            super().dragMoveEvent(event)
        else:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.source() is not self:
            event.acceptProposedAction()
            self.files_dropped.emit(dropped_paths(event))
            return
        source = self.currentRow()
        target = self.indexAt(event.pos()).row()
        event.setDropAction(Qt.IgnoreAction)  # the library reorders; the list is rebuilt from it
        event.accept()
        if source >= 0:
            self.moved.emit(source, target if target >= 0 else self.count() - 1)


class AvatarGallery(QWidget):
    """Thumbnails of the session's avatar library.

    Clicking an avatar drives it; clicking the one being driven switches to passthrough (through `run`, the
    window's action runner). New avatars come from files through the crop editor and are saved as new files.
    Problems are reported through `error`.
    """

    error = pyqtSignal(str)
    changed = pyqtSignal()

    def __init__(self, avatars: AvatarChoice, run: Callable[..., None], passthrough: Callable[[], bool],
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.avatars = avatars
        self._run = run
        self._passthrough = passthrough
        self.editor: CropEditor | None = None
        self.confirm: QMessageBox | None = None
        self._pending: list[Path] = []
        self._added = 0
        self._batch = 0
        self._thumbnails: dict[tuple[Path, float], QIcon] = {}
        self._shown: list[Path] = []
        title = QLabel("Avatars", self)
        title.setObjectName("sectionTitle")
        hint = QLabel("Click to drive · click again for passthrough · drag to reorder · drop pictures here", self)
        hint.setObjectName("hint")
        self.add_button = QPushButton("Add…", self)
        self.add_button.setToolTip("Add avatars from pictures (or drop picture files on the gallery)")
        self.remove_button = QPushButton("Remove", self)
        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setToolTip(tooltip("reload_avatars"))
        self.list = GalleryList(self)
        header = QHBoxLayout()
        for widget, stretch in ((title, 0), (hint, 1), (self.add_button, 0), (self.remove_button, 0), (self.reload_button, 0)):
            header.addWidget(widget, stretch)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.list)
        self.setAcceptDrops(True)
        self.list.itemClicked.connect(lambda item: self.activate(item.data(Qt.UserRole)))
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.list.moved.connect(self.move)
        self.list.files_dropped.connect(self.add_dropped)
        self.add_button.clicked.connect(self.choose_files)
        self.remove_button.clicked.connect(self.ask_remove)
        self.reload_button.clicked.connect(lambda: self._run("reload_avatars"))
        self.refresh()

    # -- showing the library -------------------------------------------------------------------

    def _icon(self, index: int, path: Path) -> tuple[QIcon, str | None]:
        try:
            key = (path, path.stat().st_mtime)
        except OSError as exc:
            return self._broken_icon(), f"{path} cannot be read: {exc.strerror or exc}."
        icon = self._thumbnails.get(key)
        if icon is None:
            try:
                icon = QIcon(to_pixmap(self.avatars.library.image(index), THUMBNAIL_SIDE))
            except AvatarifyError as exc:
                return self._broken_icon(), str(exc)
            self._thumbnails[key] = icon
        return icon, None

    @staticmethod
    def _broken_icon() -> QIcon:
        pixmap = QPixmap(THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        pixmap.fill(QColor("#5c2b2b"))
        return QIcon(pixmap)

    def refresh(self) -> None:
        """Rebuild the thumbnails from the library (after it changed) and mark the avatar being driven."""
        library = self.avatars.library
        self.list.clear()
        self._shown = list(library.paths)
        for index, (path, name) in enumerate(zip(library.paths, library.names)):
            icon, problem = self._icon(index, path)
            item = QListWidgetItem(icon, f"{index + 1} · {name}" if index < 9 else name)
            item.setData(Qt.UserRole, index)
            item.setToolTip(problem or f"{name}\n{path}\nClick to drive; click again for passthrough.")
            item.setSizeHint(self.list.gridSize())
            self.list.addItem(item)
        self.sync()

    def sync(self) -> None:
        """Mark the avatar being driven (none while in passthrough)."""
        if list(self.avatars.library.paths) != self._shown:
            self.refresh()
            return
        active = None if self._passthrough() else self.avatars.index
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setSelected(row == active)
            font = item.font()
            font.setBold(row == active)
            item.setFont(font)
        if active is not None and active < self.list.count():
            self.list.scrollToItem(self.list.item(active))
        self._selection_changed()

    @property
    def selected_index(self) -> int | None:
        items = self.list.selectedItems()
        return items[0].data(Qt.UserRole) if items else None

    def _selection_changed(self) -> None:
        index = self.selected_index
        removable = index is not None and self.avatars.library.removable(index)
        self.remove_button.setEnabled(removable)
        self.remove_button.setToolTip(
            "Remove the selected avatar you added (its file is deleted)" if removable
            else NOT_REMOVABLE if index is not None else "Select an avatar you added to remove it"
        )  # fmt: skip

    # -- driving and ordering ----------------------------------------------------------------------

    def activate(self, index: int) -> None:
        """Drive avatar `index`; if it is already being driven, switch to passthrough."""
        if index == self.avatars.index and not self._passthrough():
            self._run("passthrough")
        else:
            self._run("select_avatar", index)
        self.sync()
        self.changed.emit()

    def move(self, source: int, target: int) -> None:
        """Put avatar `source` at position `target`; numbers follow the new order."""
        self.avatars.library.move(source, target)
        self.avatars.reload()  # the avatar being driven is followed by its file
        self.refresh()
        self.changed.emit()

    # -- adding ------------------------------------------------------------------------------------

    def choose_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Add avatars", str(Path.home()),
            "Pictures (" + " ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES) + ");;All files (*)",
        )  # fmt: skip
        self.add_files([Path(name) for name in names])

    def add_dropped(self, paths: list[Path]) -> None:
        pictures = image_files(paths)
        if len(pictures) < len(paths):
            skipped = ", ".join(path.name for path in paths if path not in pictures)
            self.error.emit(f"Skipped {skipped}: only picture files ({', '.join(IMAGE_SUFFIXES)}) can become avatars.")
        self.add_files(pictures)

    def add_files(self, paths: list[Path]) -> None:
        """Open the crop editor for each picture in turn ("1 of 3"); each saved crop becomes a new avatar."""
        if self.editor is None:
            self._added, self._batch = 0, 0
        self._pending.extend(paths)
        self._batch += len(paths)
        if self.editor is None:
            self._edit_next()

    def _edit_next(self) -> None:
        while self._pending:
            path = self._pending.pop(0)
            self._added += 1
            try:
                image = read_image(path)
            except AvatarifyError as exc:
                self.error.emit(str(exc))
                continue
            self.editor = CropEditor(image, path.stem, self, position=(self._added, self._batch))
            self.editor.finished.connect(self._editor_finished)
            self.editor.open()
            return

    def _editor_finished(self, result: int) -> None:
        editor, self.editor = self.editor, None
        if editor is None:
            return
        if result == CropEditor.Accepted:
            self._save(editor)
        if editor.cancel_rest:
            self._pending.clear()
        editor.deleteLater()
        self._edit_next()

    def _save(self, editor: CropEditor) -> None:
        try:
            path = self.avatars.library.add(editor.result_image(), editor.name)
        except (AvatarifyError, OSError) as exc:
            self.error.emit(f"Could not save the avatar: {exc}")
            return
        log.info("Added avatar %s", path)
        self.refresh()
        self.activate(self.avatars.library.paths.index(path))

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        event.acceptProposedAction()
        self.add_dropped(dropped_paths(event))

    # -- removing ----------------------------------------------------------------------------------

    def ask_remove(self) -> None:
        """Ask before deleting the selected avatar's file."""
        index = self.selected_index
        if index is None or not self.avatars.library.removable(index):
            return
        name = self.avatars.library.names[index]
        self.confirm = QMessageBox(
            QMessageBox.Question, "Remove avatar",
            f"Remove the avatar “{name}”? Its file is deleted from your avatar folder.",
            QMessageBox.Yes | QMessageBox.Cancel, self,
        )  # fmt: skip
        self.confirm.setDefaultButton(QMessageBox.Cancel)
        self.confirm.finished.connect(lambda _result, i=index: self._confirmed(i))
        self.confirm.open()

    def _confirmed(self, index: int) -> None:
        box, self.confirm = self.confirm, None
        if box is None or box.clickedButton() is not box.button(QMessageBox.Yes):
            return
        try:
            self.avatars.library.remove(index)
        except (AvatarifyError, OSError) as exc:
            self.error.emit(str(exc))
            return
        self._run("reload_avatars")
        self.refresh()
        self.changed.emit()
