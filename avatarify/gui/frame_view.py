"""Showing RGB numpy frames in Qt: conversion to QImage and a widget that paints one, aspect kept."""
from __future__ import annotations

import cv2
import numpy as np
from PyQt5.QtCore import QRectF, QSize, Qt
from PyQt5.QtGui import QColor, QImage, QPainter, QPixmap
from PyQt5.QtWidgets import QSizePolicy, QWidget


def to_qimage(frame: np.ndarray) -> QImage:
    """An H x W x 3 RGB uint8 array as a QImage that owns a copy of the pixels."""
    array = np.ascontiguousarray(frame, dtype=np.uint8)
    height, width = array.shape[:2]
    image = QImage(array.data, width, height, array.strides[0], QImage.Format_RGB888)
    return image.copy()  # detach from the numpy buffer, which the caller may reuse


def to_pixmap(frame: np.ndarray, side: int) -> QPixmap:
    """A square thumbnail pixmap of an RGB frame."""
    return QPixmap.fromImage(to_qimage(frame)).scaled(side, side, Qt.KeepAspectRatioByExpanding, Qt.SmoothTransformation)


class FrameView(QWidget):
    """Paints the newest frame scaled to fit, centred, with a placeholder text until one arrives."""

    def __init__(self, placeholder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(64, 48)

    def sizeHint(self) -> QSize:
        return QSize(560, 420)

    @property
    def has_frame(self) -> bool:
        return self._image is not None

    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the frame shown, or None."""
        return None if self._image is None else (self._image.width(), self._image.height())

    def set_frame(self, frame: np.ndarray) -> None:
        # Scaled here with OpenCV (which releases the GIL) rather than while painting: at camera
        # rate, painter scaling would take GUI-thread time from the pipeline's threads.
        h, w = frame.shape[:2]
        ratio = self.devicePixelRatioF()
        scale = min(self.width() * ratio / w, self.height() * ratio / h)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        self._image = to_qimage(frame)
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#15171c"))
        if self._image is None:
            painter.setPen(QColor("#8b93a7"))
            painter.drawText(self.rect(), Qt.AlignCenter | Qt.TextWordWrap, self._placeholder)
            return
        painter.setRenderHint(QPainter.SmoothPixmapTransform)
        size = self._image.size().scaled(self.size(), Qt.KeepAspectRatio)
        x = (self.width() - size.width()) / 2
        y = (self.height() - size.height()) / 2
        painter.drawImage(QRectF(x, y, size.width(), size.height()), self._image)
