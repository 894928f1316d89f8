"""The settings dialog: edits a copy of the settings; the window hands the result to the settings model."""
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

from ..core.settings import ENGINES, MAX_MOTION_STRENGTH, Settings
from .controls import ENGINE_LABELS

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (960, 540), (1280, 720), (1920, 1080))


def _with_browse(edit: QLineEdit, button: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(button)
    return row


def _check(text: str, checked: bool, parent: QWidget) -> QCheckBox:
    box = QCheckBox(text, parent)
    box.setChecked(checked)
    return box


class SettingsDialog(QDialog):
    """Camera resolution, virtual camera, crop, view, motion and model settings.

    `devices` are the model devices this computer has; `backends` the virtual camera backends of this platform,
    as (value, label); `virtual_cameras` the devices found. Only what exists here is offered.
    """

    def __init__(
        self,
        settings: Settings,
        devices: Sequence[str] = ("auto", "cpu"),
        backends: Sequence[tuple[str, str]] = (("", "Automatic"),),
        virtual_cameras: Sequence[str] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._original = settings
        self.resolution = QComboBox(self)
        current = (settings.camera_width, settings.camera_height)
        for width, height in RESOLUTIONS if current in RESOLUTIONS else (*RESOLUTIONS, current):
            self.resolution.addItem(f"{width} × {height}", f"{width}x{height}")
        self.resolution.setCurrentIndex(self.resolution.findData(f"{current[0]}x{current[1]}"))
        self._build_vcam(settings, backends, virtual_cameras)
        self.smart_crop = _check("Smart crop: follow the face", settings.smart_crop, self)
        self.mirror_preview = _check("Mirror the preview", settings.mirror_preview, self)
        self.mirror_output = _check("Mirror the output", settings.mirror_output, self)
        self.overlay_opacity = QSlider(Qt.Horizontal, self)
        self.overlay_opacity.setRange(0, 100)
        self.overlay_opacity.setValue(round(settings.overlay_opacity * 100))
        self.overlay_opacity.setToolTip("The avatar drawn over the camera preview, to match its pose before calibrating")
        self._build_model(settings, devices)
        self.confirm_quit = _check("Ask before quitting while the virtual camera is sending", settings.confirm_quit, self)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.Ok)
        self._lay_out(buttons)

    def _build_vcam(self, settings: Settings, backends: Sequence[tuple[str, str]], devices: Sequence[str]) -> None:
        self.vcam_enabled = _check("Send the output to a virtual camera", settings.vcam_enabled, self)
        self.vcam_device = QComboBox(self)
        self.vcam_device.setEditable(True)
        self.vcam_device.addItems(["", *devices])
        self.vcam_device.setCurrentText(settings.vcam_device)
        self.vcam_device.lineEdit().setPlaceholderText("default device")
        self.vcam_backend = QComboBox(self)
        for value, label in backends:
            self.vcam_backend.addItem(label, value)
        found = self.vcam_backend.findData(settings.vcam_backend)
        if found < 0:  # a backend set elsewhere stays selectable rather than silently replaced
            self.vcam_backend.addItem(settings.vcam_backend, settings.vcam_backend)
            found = self.vcam_backend.count() - 1
        self.vcam_backend.setCurrentIndex(found)
        for widget in (self.vcam_device, self.vcam_backend):
            self.vcam_enabled.toggled.connect(widget.setEnabled)
            widget.setEnabled(settings.vcam_enabled)
        self.output_keep_aspect = _check(
            "Pad the output to the camera's shape (instead of a square)", settings.output_keep_aspect, self
        )
        self.camera_when_unavailable = _check(
            "Show my camera while the avatar is unavailable (off: the last avatar frame is held)",
            settings.camera_when_unavailable, self,
        )  # fmt: skip

    def _build_model(self, settings: Settings, devices: Sequence[str]) -> None:
        self.relative = QRadioButton("Relative: your motion relative to the calibrated pose (recommended)", self)
        self.absolute = QRadioButton("Absolute: the avatar copies your face's keypoints", self)
        group = QButtonGroup(self)
        group.addButton(self.relative)
        group.addButton(self.absolute)
        (self.relative if settings.relative else self.absolute).setChecked(True)
        self.adapt_scale = _check("Adapt the movement scale to the avatar's face", settings.adapt_scale, self)
        self.motion_strength = QDoubleSpinBox(self)
        self.motion_strength.setRange(0.0, MAX_MOTION_STRENGTH)
        self.motion_strength.setSingleStep(0.1)
        self.motion_strength.setValue(settings.motion_strength)
        self.motion_strength.setToolTip("Multiplies your relative motion; 1.0 is the original behaviour")
        self.engine = QComboBox(self)
        for engine in ENGINES:
            self.engine.addItem(ENGINE_LABELS[engine], engine)
        self.engine.setCurrentIndex(max(0, self.engine.findData(settings.engine)))
        self.model_device = QComboBox(self)
        for device in devices:
            self.model_device.addItem(device)
        if self.model_device.findText(settings.model_device) < 0:
            self.model_device.addItem(settings.model_device)  # kept visible, even when it is not here any more
        self.model_device.setCurrentText(settings.model_device)
        self.model_device.setToolTip("auto: the best device here. Only the devices this computer has are listed.")
        self.checkpoint = QLineEdit(settings.checkpoint, self)
        self.checkpoint.setPlaceholderText("automatic: downloaded or installed weights")
        self.checkpoint_browse = QPushButton("Browse…", self)
        self.checkpoint_browse.clicked.connect(self._browse_checkpoint)

    def _lay_out(self, buttons: QDialogButtonBox) -> None:
        groups = {
            "Camera": [("Resolution", self.resolution)],
            "Virtual camera": [(None, self.vcam_enabled), ("Device", self.vcam_device), ("Backend", self.vcam_backend),
                               (None, self.output_keep_aspect), (None, self.camera_when_unavailable)],
            "Crop and view": [(None, self.smart_crop), (None, self.mirror_preview), (None, self.mirror_output),
                              ("Avatar overlay", self.overlay_opacity), (None, self.confirm_quit)],
            "Motion and model": [(None, self.relative), (None, self.absolute), (None, self.adapt_scale),
                                 ("Motion strength", self.motion_strength), ("Engine", self.engine),
                                 ("Device", self.model_device),
                                 ("Checkpoint", _with_browse(self.checkpoint, self.checkpoint_browse))],
        }  # fmt: skip
        columns = QHBoxLayout()
        left, right = QVBoxLayout(), QVBoxLayout()
        for title, rows in groups.items():
            box = QGroupBox(title, self)
            form = QFormLayout(box)
            for label, widget in rows:
                if label is None:
                    form.addRow(widget)
                else:
                    form.addRow(label, widget)
            (right if title == "Motion and model" else left).addWidget(box)
        note = QLabel("Engine, device and checkpoint changes reload the model.", self)
        note.setObjectName("hint")
        right.addWidget(note)
        left.addStretch(1)
        right.addStretch(1)
        columns.addLayout(left)
        columns.addLayout(right)
        layout = QVBoxLayout(self)
        layout.addLayout(columns)
        layout.addWidget(buttons)

    def _browse_checkpoint(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, "Model checkpoint", str(Path.home()), "FOMM checkpoints (*.pth.tar *.pth *.tar);;All files (*)"
        )
        if name:
            self.checkpoint.setText(name)

    def values(self) -> Settings:
        """The settings as edited (fields the dialog does not show keep their values)."""
        width, height = (int(value) for value in self.resolution.currentData().split("x"))
        return dataclasses.replace(
            self._original,
            camera_width=width,
            camera_height=height,
            vcam_enabled=self.vcam_enabled.isChecked(),
            vcam_device=self.vcam_device.currentText().strip(),
            vcam_backend=self.vcam_backend.currentData(),
            output_keep_aspect=self.output_keep_aspect.isChecked(),
            camera_when_unavailable=self.camera_when_unavailable.isChecked(),
            smart_crop=self.smart_crop.isChecked(),
            mirror_preview=self.mirror_preview.isChecked(),
            mirror_output=self.mirror_output.isChecked(),
            overlay_opacity=self.overlay_opacity.value() / 100,
            confirm_quit=self.confirm_quit.isChecked(),
            relative=self.relative.isChecked(),
            adapt_scale=self.adapt_scale.isChecked(),
            motion_strength=round(self.motion_strength.value(), 2),
            engine=self.engine.currentData(),
            model_device=self.model_device.currentText().strip() or "auto",
            checkpoint=self.checkpoint.text().strip(),
        )
