"""The avatar gallery: thumbnails of the avatar folders; click to drive, add (dialog or drop), remove, reload."""
from __future__ import annotations

import logging
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
from ..pipeline.pipeline import Pipeline
from .crop_editor import CropEditor
from .frame_view import to_pixmap
from .hotkeys import tooltip

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 88


def image_files(paths: list[Path]) -> list[Path]:
    """The picture files among dropped paths."""
    return [path for path in paths if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]


class AvatarGallery(QWidget):
    """Thumbnails of the pipeline's avatar library.

    Clicking an avatar drives it; clicking the one being driven switches to passthrough. New avatars
    come from a file (dialog or drag-and-drop) through the crop editor and are saved as new files in
    the user's avatar folder. Problems are reported through `error`.
    """

    error = pyqtSignal(str)
    changed = pyqtSignal()  # the avatar being driven (or passthrough) changed

    def __init__(self, pipeline: Pipeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.editor: CropEditor | None = None
        self.confirm: QMessageBox | None = None
        self._pending: list[Path] = []
        self._thumbnails: dict[tuple[Path, float], QIcon] = {}
        self._shown: list[Path] = []

        title = QLabel("Avatars", self)
        title.setObjectName("sectionTitle")
        self.hint = QLabel("Click to drive · click again for passthrough · drop pictures here", self)
        self.hint.setObjectName("hint")
        self.add_button = QPushButton("Add…", self)
        self.add_button.setToolTip("Add an avatar from a picture (or drop picture files on the gallery)")
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setToolTip("Remove the selected avatar you added (the file is deleted)")
        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setToolTip(tooltip("reload_avatars"))

        self.list = QListWidget(self)
        self.list.setViewMode(QListView.IconMode)
        self.list.setFlow(QListView.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Static)
        self.list.setResizeMode(QListView.Adjust)
        self.list.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        self.list.setGridSize(QSize(THUMBNAIL_SIDE + 44, THUMBNAIL_SIDE + 30))
        self.list.setFixedHeight(THUMBNAIL_SIDE + 52)
        self.list.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setDragDropMode(QAbstractItemView.NoDragDrop)
        self.list.setFocusPolicy(Qt.NoFocus)  # arrow keys belong to the avatar hotkeys
        # Drops go to this widget, not to the list's own item moving.
        self.list.setAcceptDrops(False)
        self.list.viewport().setAcceptDrops(False)
        self.setAcceptDrops(True)

        header = QHBoxLayout()
        header.addWidget(title)
        header.addWidget(self.hint, 1)
        header.addWidget(self.add_button)
        header.addWidget(self.remove_button)
        header.addWidget(self.reload_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.list)

        self.list.itemClicked.connect(self._clicked)
        self.add_button.clicked.connect(self.choose_files)
        self.remove_button.clicked.connect(self.ask_remove)
        self.reload_button.clicked.connect(self.reload)
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
                icon = QIcon(to_pixmap(self.pipeline.avatars.image(index), THUMBNAIL_SIDE))
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
        library = self.pipeline.avatars
        self.list.clear()
        self._shown = list(library.paths)
        for index, (path, name) in enumerate(zip(library.paths, library.names)):
            icon, problem = self._icon(index, path)
            label = f"{index + 1} · {name}" if index < 9 else name
            item = QListWidgetItem(icon, label)
            item.setData(Qt.UserRole, index)
            item.setToolTip(problem or f"{name}\n{path}\nClick to drive; click again for passthrough.")
            item.setSizeHint(self.list.gridSize())
            self.list.addItem(item)
        self.remove_button.setEnabled(bool(self._shown))
        self.sync()

    def sync(self) -> None:
        """Mark the avatar being driven (none while in passthrough)."""
        if list(self.pipeline.avatars.paths) != self._shown:
            self.refresh()
            return
        index = self.pipeline.avatar_index
        active = None if self.pipeline.settings.passthrough or index is None else index
        for row in range(self.list.count()):
            item = self.list.item(row)
            item.setSelected(row == active)
            font = item.font()
            font.setBold(row == active)
            item.setFont(font)
        if active is not None:
            self.list.scrollToItem(self.list.item(active))

    @property
    def selected_index(self) -> int | None:
        items = self.list.selectedItems()
        return items[0].data(Qt.UserRole) if items else None

    # -- driving -----------------------------------------------------------------------------

    def _clicked(self, item: QListWidgetItem) -> None:
        self.activate(item.data(Qt.UserRole))

    def activate(self, index: int) -> None:
        """Drive avatar `index`; if it is already being driven, switch to passthrough."""
        pipeline = self.pipeline
        if index == pipeline.avatar_index and not pipeline.settings.passthrough:
            pipeline.set_passthrough(True)
        else:
            pipeline.select_avatar(index)
            pipeline.set_passthrough(False)
        self.sync()
        self.changed.emit()

    def reload(self) -> None:
        """Read the avatar folders again (files added or removed outside the app)."""
        self.pipeline.reload_avatars()
        self._thumbnails.clear()
        self.refresh()
        self.changed.emit()

    # -- adding ------------------------------------------------------------------------------

    def choose_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self,
            "Add avatars",
            str(Path.home()),
            "Pictures (" + " ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES) + ");;All files (*)",
        )
        self.add_files([Path(name) for name in names])

    def add_files(self, paths: list[Path]) -> None:
        """Open the crop editor for each picture in turn; each saved crop becomes a new avatar."""
        self._pending.extend(paths)
        if self.editor is None:
            self._edit_next()

    def _edit_next(self) -> None:
        while self._pending:
            path = self._pending.pop(0)
            try:
                image = read_image(path)
            except AvatarifyError as exc:
                self.error.emit(str(exc))
                continue
            self.editor = CropEditor(image, path.stem, self)
            self.editor.finished.connect(self._editor_finished)
            self.editor.open()
            return

    def _editor_finished(self, result: int) -> None:
        editor, self.editor = self.editor, None
        if result == CropEditor.Accepted and editor is not None:
            self._save(editor)
        if editor is not None:
            editor.deleteLater()
        self._edit_next()

    def _save(self, editor: CropEditor) -> None:
        try:
            path = self.pipeline.avatars.add(editor.result_image(), editor.name)
        except (AvatarifyError, OSError) as exc:
            self.error.emit(f"Could not save the avatar: {exc}")
            return
        log.info("Added avatar %s", path)
        self.pipeline.reload_avatars()
        self.refresh()
        paths = list(self.pipeline.avatars.paths)
        if path in paths:
            self.activate(paths.index(path))

    @staticmethod
    def _dropped_paths(event) -> list[Path]:
        return [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        # Any local file is accepted so that a wrong one gets an explanation rather than a "no entry" cursor.
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        paths = self._dropped_paths(event)
        pictures = image_files(paths)
        event.acceptProposedAction()
        if len(pictures) < len(paths):
            skipped = ", ".join(path.name for path in paths if path not in pictures)
            self.error.emit(f"Skipped {skipped}: only picture files ({', '.join(IMAGE_SUFFIXES)}) can become avatars.")
        self.add_files(pictures)

    # -- removing ----------------------------------------------------------------------------

    def ask_remove(self) -> None:
        """Ask before deleting the selected avatar's file."""
        index = self.selected_index
        if index is None:
            self.error.emit("Select the avatar to remove first.")
            return
        library = self.pipeline.avatars
        name, path = library.names[index], library.paths[index]
        if path.parent.resolve() != library.user_folder.resolve():
            self.error.emit(f"“{name}” is not in your avatar folder {library.user_folder}; only avatars you added can be removed.")
            return
        self.confirm = QMessageBox(
            QMessageBox.Question,
            "Remove avatar",
            f"Remove the avatar “{name}”? Its file is deleted from your avatar folder.",
            QMessageBox.Yes | QMessageBox.Cancel,
            self,
        )
        self.confirm.setDefaultButton(QMessageBox.Cancel)
        self.confirm.finished.connect(lambda _result, i=index: self._confirmed(i))
        self.confirm.open()

    def _confirmed(self, index: int) -> None:
        box, self.confirm = self.confirm, None
        if box is None or box.clickedButton() is not box.button(QMessageBox.Yes):
            return
        self.remove(index)

    def remove(self, index: int) -> None:
        """Delete avatar `index` (only avatars in the user's folder can be removed)."""
        try:
            self.pipeline.avatars.remove(index)
        except (AvatarifyError, OSError, ValueError) as exc:
            self.error.emit(str(exc))
            return
        self.pipeline.reload_avatars()
        self.refresh()
        self.changed.emit()
