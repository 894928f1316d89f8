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
VCAM_BACKENDS: tuple[tuple[str, str], ...] = (
    ("", "Automatic"),
    ("v4l2loopback", "v4l2loopback (Linux)"),
    ("obs", "OBS Virtual Camera"),
    ("unitycapture", "Unity Capture (Windows)"),
)
DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")


def _with_browse(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


class SettingsDialog(QDialog):
    """Camera, virtual camera, crop, view and model settings."""

    def __init__(
        self,
        settings: AppSettings,
        cameras: Sequence[CameraInfo],
        virtual_cameras: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._original = settings

        # Camera
        self.camera = QComboBox(self)
        self.camera.setEditable(True)
        self.camera.setToolTip("A camera by name or index, or a video file / image folder played as a camera")
        for info in cameras:
            self.camera.addItem(info.name, str(info.index))
        self._camera_shown = self._camera_text(settings.camera, cameras)
        self.camera.setCurrentText(self._camera_shown)
        camera_browse = QPushButton("Video file…", self)
        camera_browse.clicked.connect(self._browse_video)
        self.resolution = QComboBox(self)
        current = (settings.camera_width, settings.camera_height)
        for width, height in RESOLUTIONS if current in RESOLUTIONS else (*RESOLUTIONS, current):
            self.resolution.addItem(f"{width} × {height}", f"{width}x{height}")
        self.resolution.setCurrentIndex(self.resolution.findData(f"{current[0]}x{current[1]}"))

        # Virtual camera
        self.vcam_enabled = QCheckBox("Send the output to a virtual camera", self)
        self.vcam_enabled.setChecked(settings.vcam_enabled)
        self.vcam_device = QComboBox(self)
        self.vcam_device.setEditable(True)
        self.vcam_device.addItems(["", *virtual_cameras])
        self.vcam_device.setCurrentText(settings.vcam_device)
        self.vcam_device.lineEdit().setPlaceholderText("default device")
        self.vcam_backend = QComboBox(self)
        for value, label in VCAM_BACKENDS:
            self.vcam_backend.addItem(label, value)
        found = self.vcam_backend.findData(settings.vcam_backend)
        if found < 0:
            self.vcam_backend.addItem(settings.vcam_backend, settings.vcam_backend)
            found = self.vcam_backend.count() - 1
        self.vcam_backend.setCurrentIndex(found)
        for widget in (self.vcam_device, self.vcam_backend):
            self.vcam_enabled.toggled.connect(widget.setEnabled)
            widget.setEnabled(settings.vcam_enabled)

        self.output_keep_aspect = QCheckBox("Pad the output to the camera's shape (instead of a square)", self)
        self.output_keep_aspect.setChecked(settings.output_keep_aspect)

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
        self.model_device.addItems(DEVICES)
        self.model_device.setCurrentText(settings.model_device)
        self.model_device.setToolTip(
            "auto: CUDA, then Apple MPS, then CPU; or cpu, cuda, cuda:1, mps. The CPU gives a few frames per second."
        )
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
        form.addRow("Backend", self.vcam_backend)
        form.addRow(self.output_keep_aspect)
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

    def _camera_value(self) -> str:
        """The camera setting: unchanged unless edited; a listed camera by its index, else the text typed."""
        text = self.camera.currentText().strip()
        if not text or text == self._camera_shown:
            return self._original.camera
        found = self.camera.findText(text, Qt.MatchExactly)
        return self.camera.itemData(found) if found >= 0 else text

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
        width, height = (int(value) for value in self.resolution.currentData().split("x"))
        return dataclasses.replace(
            self._original,
            camera=self._camera_value(),
            camera_width=width,
            camera_height=height,
            vcam_enabled=self.vcam_enabled.isChecked(),
            vcam_device=self.vcam_device.currentText().strip(),
            vcam_backend=self.vcam_backend.currentData(),
            output_keep_aspect=self.output_keep_aspect.isChecked(),
            smart_crop=self.smart_crop.isChecked(),
            mirror_preview=self.mirror_preview.isChecked(),
            mirror_output=self.mirror_output.isChecked(),
            overlay_opacity=self.overlay_opacity.value() / 100,
            relative=self.relative.isChecked(),
            adapt_scale=self.adapt_scale.isChecked(),
            motion_strength=round(self.motion_strength.value(), 2),
            model_device=self.model_device.currentText().strip() or "auto",
            checkpoint=self.checkpoint.text().strip(),
        )
