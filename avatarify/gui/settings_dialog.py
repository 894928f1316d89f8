"""The settings dialog: edits a copy of `AppSettings`; the window applies what changed."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..pipeline.camera import CameraInfo
from .settings import AppSettings

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (960, 540), (1280, 720), (1920, 1080))
DEVICES: tuple[tuple[str, str], ...] = (
    ("auto", "Automatic (CUDA, then Apple MPS, then CPU)"),
    ("cuda", "NVIDIA GPU (CUDA)"),
    ("mps", "Apple Silicon (MPS)"),
    ("cpu", "CPU (slow)"),
)


def _with_browse(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class SettingsDialog(QDialog):
    """Camera, virtual camera, crop, view and model settings."""

    def __init__(self, settings: AppSettings, cameras: Sequence[CameraInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._original = settings

        # Camera
        self.camera = QComboBox(self)
        self.camera.setEditable(True)
        self.camera.setToolTip("A camera by name or index, or a video file / image folder played as a camera")
        for info in cameras:
            self.camera.addItem(f"{info.name}", info.name)
        self.camera.setCurrentText(self._camera_text(settings.camera, cameras))
        camera_browse = QPushButton("Video file…", self)
        camera_browse.clicked.connect(self._browse_video)
        self.resolution = QComboBox(self)
        for width, height in RESOLUTIONS:
            self.resolution.addItem(f"{width} × {height}", (width, height))
        current = (settings.camera_width, settings.camera_height)
        if current not in RESOLUTIONS:
            self.resolution.addItem(f"{current[0]} × {current[1]}", current)
        self.resolution.setCurrentIndex(self.resolution.findData(current))

        # Virtual camera
        self.vcam_enabled = QCheckBox("Send the output to a virtual camera", self)
        self.vcam_enabled.setChecked(settings.vcam_enabled)
        self.vcam_device = QLineEdit(settings.vcam_device, self)
        self.vcam_device.setPlaceholderText("default device (Linux: e.g. /dev/video9)")
        self.vcam_enabled.toggled.connect(self.vcam_device.setEnabled)
        self.vcam_device.setEnabled(settings.vcam_enabled)

        # Crop and view
        self.smart_crop = QCheckBox("Smart crop: follow the face", self)
        self.smart_crop.setChecked(settings.smart_crop)
        self.mirror_preview = QCheckBox("Mirror the preview", self)
        self.mirror_preview.setChecked(settings.mirror_preview)
        self.mirror_output = QCheckBox("Mirror the output", self)
        self.mirror_output.setChecked(settings.mirror_output)
        self.overlay_opacity = QSlider(Qt.Horizontal, self)
        self.overlay_opacity.setRange(0, 100)
        self.overlay_opacity.setValue(round(settings.overlay_opacity * 100))
        self.overlay_opacity.setToolTip("The avatar drawn over the camera preview, to match its pose before calibrating")

        # Motion and model
        self.relative = QRadioButton("Relative: your motion relative to the calibrated pose (recommended)", self)
        self.absolute = QRadioButton("Absolute: the avatar copies your face's keypoints", self)
        group = QButtonGroup(self)
        group.addButton(self.relative)
        group.addButton(self.absolute)
        (self.relative if settings.relative else self.absolute).setChecked(True)
        self.adapt_scale = QCheckBox("Adapt the movement scale to the avatar's face", self)
        self.adapt_scale.setChecked(settings.adapt_scale)
        self.motion_strength = QDoubleSpinBox(self)
        self.motion_strength.setRange(0.0, 3.0)
        self.motion_strength.setSingleStep(0.1)
        self.motion_strength.setValue(settings.motion_strength)
        self.motion_strength.setToolTip("Multiplies your relative motion; 1.0 is the original behaviour")
        self.model_device = QComboBox(self)
        self.model_device.setEditable(True)
        for value, label in DEVICES:
            self.model_device.addItem(label, value)
        found = self.model_device.findData(settings.model_device)
        if found >= 0:
            self.model_device.setCurrentIndex(found)
        else:
            self.model_device.setCurrentText(settings.model_device)
        self.checkpoint = QLineEdit(settings.checkpoint, self)
        self.checkpoint.setPlaceholderText("automatic: downloaded or installed weights")
        checkpoint_browse = QPushButton("Browse…", self)
        checkpoint_browse.clicked.connect(self._browse_checkpoint)

        camera_box = QGroupBox("Camera", self)
        form = QFormLayout(camera_box)
        form.addRow("Camera", _with_browse(self.camera, camera_browse))
        form.addRow("Resolution", self.resolution)
        vcam_box = QGroupBox("Virtual camera", self)
        form = QFormLayout(vcam_box)
        form.addRow(self.vcam_enabled)
        form.addRow("Device", self.vcam_device)
        view_box = QGroupBox("Crop and view", self)
        form = QFormLayout(view_box)
        form.addRow(self.smart_crop)
        form.addRow(self.mirror_preview)
        form.addRow(self.mirror_output)
        form.addRow("Avatar overlay", self.overlay_opacity)
        model_box = QGroupBox("Motion and model", self)
        form = QFormLayout(model_box)
        form.addRow(self.relative)
        form.addRow(self.absolute)
        form.addRow(self.adapt_scale)
        form.addRow("Motion strength", self.motion_strength)
        form.addRow("Device", self.model_device)
        form.addRow("Checkpoint", _with_browse(self.checkpoint, checkpoint_browse))
        note = QLabel("Device and checkpoint changes reload the model.", self)
        note.setObjectName("hint")
        form.addRow(note)

        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.Ok)
        columns = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(camera_box)
        left.addWidget(vcam_box)
        left.addWidget(view_box)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(model_box)
        right.addStretch(1)
        columns.addLayout(left)
        columns.addLayout(right)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(buttons)

    @staticmethod
    def _camera_text(spec: str, cameras: Sequence[CameraInfo]) -> str:
        """A camera index is shown by the camera's name when the system names it."""
        if spec.strip().isdigit():
            for info in cameras:
                if info.index == int(spec):
                    return info.name
        return spec

    def _browse_video(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Play a video file as the camera", str(Path.home()), "Videos (*.mp4 *.avi *.mov *.mkv *.webm);;All files (*)"
        )
        if name:
            self.camera.setCurrentText(name)

    def _browse_checkpoint(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Model checkpoint", str(Path.home()), "FOMM checkpoints (*.pth.tar *.pth *.tar);;All files (*)"
        )
        if name:
            self.checkpoint.setText(name)

    def values(self) -> AppSettings:
        """The settings as edited (fields the dialog does not show keep their values)."""
        width, height = self.resolution.currentData()
        device = self.model_device.currentData() if self.model_device.currentIndex() >= 0 and (
            self.model_device.currentText() == self.model_device.itemText(self.model_device.currentIndex())
        ) else self.model_device.currentText().strip()
        return dataclasses.replace(
            self._original,
            camera=self.camera.currentText().strip() or self._original.camera,
            camera_width=width,
            camera_height=height,
            vcam_enabled=self.vcam_enabled.isChecked(),
            vcam_device=self.vcam_device.text().strip(),
            smart_crop=self.smart_crop.isChecked(),
            mirror_preview=self.mirror_preview.isChecked(),
            mirror_output=self.mirror_output.isChecked(),
            overlay_opacity=self.overlay_opacity.value() / 100,
            relative=self.relative.isChecked(),
            adapt_scale=self.adapt_scale.isChecked(),
            motion_strength=round(self.motion_strength.value(), 2),
            model_device=device or "auto",
            checkpoint=self.checkpoint.text().strip(),
        )
