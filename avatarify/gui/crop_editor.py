"""The crop editor for a new avatar: a square crop seeded by face detection, moved by dragging, zoomed by wheel/slider."""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QImage, QPainter, QPainterPath, QPen, QPixmap
from PyQt5.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..core.faces import SquareCrop, center_crop, crop_around_face, cut_square, largest_face
from .frame_view import to_qimage

# Saved avatars keep some resolution above the model's 256 px so they stay sharp if models grow.
SAVED_SIDE = 512
PREVIEW_SIDE = 192
ZOOM_STEP = 1.1
MIN_SIDE = 32


class CropCanvas(QWidget):
    """The image with the square crop drawn over it; drag to move, wheel to zoom."""

    crop_changed = pyqtSignal()

    def __init__(self, image: np.ndarray, crop: SquareCrop, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image = image
        self._qimage: QImage = to_qimage(image)
        self._crop = crop
        self._drag_from: QPointF | None = None
        self.setMinimumSize(360, 360)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setCursor(Qt.OpenHandCursor)

    def sizeHint(self) -> QSize:
        return QSize(520, 520)

    @property
    def crop(self) -> SquareCrop:
        return self._crop

    @property
    def max_side(self) -> float:
        return 2.0 * max(self._image.shape[:2])

    def set_crop(self, crop: SquareCrop) -> None:
        h, w = self._image.shape[:2]
        side = min(max(crop.side, MIN_SIDE), self.max_side)
        self._crop = SquareCrop(cx=min(max(crop.cx, 0.0), w), cy=min(max(crop.cy, 0.0), h), side=side)
        self.update()
        self.crop_changed.emit()

    def zoom(self, factor: float) -> None:
        """Zoom in (factor > 1) or out: the crop square shrinks or grows around its centre."""
        self.set_crop(SquareCrop(self._crop.cx, self._crop.cy, self._crop.side / factor))

    def _scale_and_origin(self) -> tuple[float, QPointF]:
        h, w = self._image.shape[:2]
        scale = min(self.width() / w, self.height() / h)
        return scale, QPointF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.setRenderHint(QPainter.SmoothPixmapTransform)
        painter.fillRect(self.rect(), QColor("#15171c"))
        scale, origin = self._scale_and_origin()
        h, w = self._image.shape[:2]
        painter.drawImage(QRectF(origin.x(), origin.y(), w * scale, h * scale), self._qimage)
        half = self._crop.side / 2
        box = QRectF(
            origin.x() + (self._crop.cx - half) * scale,
            origin.y() + (self._crop.cy - half) * scale,
            self._crop.side * scale,
            self._crop.side * scale,
        )
        shade = QPainterPath()
        shade.addRect(QRectF(self.rect()))
        hole = QPainterPath()
        hole.addRect(box)
        painter.fillPath(shade.subtracted(hole), QColor(0, 0, 0, 150))
        painter.setPen(QPen(QColor("#4fc3f7"), 2))
        painter.drawRect(box)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.LeftButton:
            self._drag_from = QPointF(event.pos())
            self.setCursor(Qt.ClosedHandCursor)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._drag_from is None:
            return
        scale, _ = self._scale_and_origin()
        delta = (QPointF(event.pos()) - self._drag_from) / scale
        self._drag_from = QPointF(event.pos())
        self.set_crop(SquareCrop(self._crop.cx + delta.x(), self._crop.cy + delta.y(), self._crop.side))

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._drag_from = None
        self.setCursor(Qt.OpenHandCursor)

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom(ZOOM_STEP**steps)


class CropEditor(QDialog):
    """Choose the square part of a picture that becomes an avatar, and its name."""

    def __init__(
        self, image: np.ndarray, name: str, parent: QWidget | None = None, position: tuple[int, int] = (1, 1)
    ) -> None:
        super().__init__(parent)
        number, count = position
        self.setWindowTitle("New avatar" if count == 1 else f"New avatar {number} of {count}")
        self.cancel_rest = False
        self.image = image
        face = largest_face(image)
        self.face_found = face is not None
        seed = crop_around_face(face) if face is not None else center_crop(image.shape)
        self.canvas = CropCanvas(image, seed, self)
        self.preview = QLabel(self)
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setFrameShape(QLabel.StyledPanel)
        self.name_edit = QLineEdit(name, self)
        self.name_edit.setPlaceholderText("avatar name")
        self.zoom_slider = QSlider(Qt.Horizontal, self)
        self.zoom_slider.setRange(0, 100)
        self.zoom_slider.setToolTip("Zoom (or use the mouse wheel on the picture)")
        hint = QLabel(
            ("Face found: the square frames it the way the model expects." if self.face_found else
             "No face found: place the square over the face.")
            + " Drag to move, scroll to zoom. Head, hair and a bit of neck should fit in.",
            self,
        )
        hint.setWordWrap(True)
        hint.setObjectName("hint")
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self._accept_if_named)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.Save)
        # ActionRole: the box must not close the dialog before `_cancel_rest` has marked it.
        self.cancel_rest_button = buttons.addButton(f"Cancel the other {count - number}", QDialogButtonBox.ActionRole)
        self.cancel_rest_button.setVisible(number < count)
        self.cancel_rest_button.clicked.connect(self._cancel_rest)

        body = QHBoxLayout()
        body.addWidget(self.canvas, 1)
        body.addWidget(self._side_panel(hint))
        layout = QVBoxLayout(self)
        layout.addLayout(body)
        layout.addWidget(buttons)
        self.setMinimumSize(720, 480)
        self.resize(900, 620)

        self.canvas.crop_changed.connect(self._on_crop_changed)
        self.zoom_slider.valueChanged.connect(self._on_slider)
        self.name_edit.textChanged.connect(self._name_changed)
        self._name_changed(name)
        self._on_crop_changed()

    def _side_panel(self, hint: QLabel) -> QWidget:
        panel = QWidget(self)
        panel.setFixedWidth(PREVIEW_SIDE + 40)
        side = QVBoxLayout(panel)
        side.setContentsMargins(0, 0, 0, 0)
        for widget in (QLabel("Result", self), self.preview, QLabel("Name", self), self.name_edit,
                       QLabel("Zoom", self), self.zoom_slider, hint):  # fmt: skip
            side.addWidget(widget)
        side.addStretch(1)
        return panel

    def _slider_to_side(self, value: int) -> float:
        # Logarithmic: equal slider steps feel like equal zoom steps.
        return MIN_SIDE * (self.canvas.max_side / MIN_SIDE) ** (1 - value / 100)

    def _side_to_slider(self, side: float) -> int:
        ratio = np.log(side / MIN_SIDE) / np.log(self.canvas.max_side / MIN_SIDE)
        return round(100 * (1 - ratio))

    def _on_slider(self, value: int) -> None:
        if value != self._side_to_slider(self.canvas.crop.side):
            crop = self.canvas.crop
            self.canvas.set_crop(SquareCrop(crop.cx, crop.cy, self._slider_to_side(value)))

    def _on_crop_changed(self) -> None:
        self.zoom_slider.blockSignals(True)
        self.zoom_slider.setValue(self._side_to_slider(self.canvas.crop.side))
        self.zoom_slider.blockSignals(False)
        self.preview.setPixmap(QPixmap.fromImage(to_qimage(cut_square(self.image, self.canvas.crop, PREVIEW_SIDE))))

    def _cancel_rest(self) -> None:
        self.cancel_rest = True
        self.reject()

    def _name_changed(self, text: str) -> None:
        self.save_button.setEnabled(bool(text.strip()))

    def _accept_if_named(self) -> None:
        if self.name.strip():
            self.accept()

    @property
    def name(self) -> str:
        return self.name_edit.text().strip()

    def result_image(self) -> np.ndarray:
        """The chosen square, SAVED_SIDE pixels wide (smaller when the crop itself is smaller)."""
        side = int(min(SAVED_SIDE, max(self.canvas.crop.side, 256)))
        return cut_square(self.image, self.canvas.crop, side)

