"""The row of controls under the previews; each one shows the setting it changes and runs a named action."""
from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from ..core.settings import ENGINES, Settings
from .camera_picker import CameraPicker
from .hotkeys import tooltip

# Checkable buttons: action -> the setting they show.
TOGGLE_BUTTONS = {
    "passthrough": ("Passthrough", "passthrough"),
    "find_best_frame": ("Find best frame", "find_best_frame"),
    "landmarks": ("Landmarks", "show_landmarks"),
    "mirror_preview": ("Mirror", "mirror_preview"),
}


ENGINE_LABELS = {"fomm": "FOMM", "liveportrait": "LivePortrait"}


class EnginePicker(QComboBox):
    """The model family: FOMM (light, runs on a CPU) or LivePortrait (the best picture, wants a GPU)."""

    chosen = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        for engine in ENGINES:
            self.addItem(ENGINE_LABELS[engine], engine)
        self.setFocusPolicy(Qt.NoFocus)
        self.setToolTip("The engine: FOMM runs on any computer; LivePortrait gives the best picture and wants a GPU")
        self.activated.connect(lambda index: self.chosen.emit(self.itemData(index)))

    def show_engine(self, engine: str) -> None:
        self.setCurrentIndex(max(0, self.findData(engine)))


class ControlBar(QWidget):
    """Calibrate, toggles, overlay slider, camera picker, the virtual camera switch and Settings (the shortcuts
    are in the App menu and on F1).

    `run(action)` performs an action by name; `set_opacity(value)` and `set_vcam(on)` change those settings.
    """

    def __init__(
        self,
        run: Callable[[str], None],
        set_opacity: Callable[[float], None],
        set_vcam: Callable[[bool], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.calibrate = self._button("calibrate", "Calibrate", run)
        self.calibrate.setObjectName("primary")
        self.toggles = {name: self._button(name, text, run, checkable=True) for name, (text, _) in TOGGLE_BUTTONS.items()}
        self.opacity = QSlider(Qt.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(120)
        self.opacity.setFocusPolicy(Qt.NoFocus)
        self.opacity.setToolTip(
            f"Avatar overlay on the camera preview, to match its pose before calibrating "
            f"({tooltip('overlay_less')}; {tooltip('overlay_more')})"
        )
        self.opacity.valueChanged.connect(lambda value: set_opacity(value / 100))
        self.camera = CameraPicker(self)
        self.camera.setFocusPolicy(Qt.NoFocus)
        self.engine = EnginePicker(self)
        self.vcam = QPushButton("Virtual camera", self)
        self.vcam.setObjectName("vcamSwitch")
        self.vcam.setCheckable(True)
        self.vcam.setFocusPolicy(Qt.NoFocus)
        self.vcam.clicked.connect(lambda checked: set_vcam(bool(checked)))
        self.settings = self._button("settings", "Settings", run)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(8)
        row.addWidget(self.calibrate)
        row.addWidget(self.toggles["passthrough"])
        row.addWidget(self.toggles["find_best_frame"])
        label = QLabel("Overlay", self)
        label.setObjectName("hint")
        row.addWidget(label)
        row.addWidget(self.opacity)
        row.addWidget(self.toggles["landmarks"])
        row.addWidget(self.toggles["mirror_preview"])
        row.addStretch(1)
        row.addWidget(self.engine)
        row.addWidget(self.camera)
        row.addWidget(self.vcam)
        row.addWidget(self.settings)

    def _button(self, action: str, text: str, run: Callable[[str], None], checkable: bool = False) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tooltip(action))
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.NoFocus)  # keys stay with the window's hotkeys
        button.clicked.connect(lambda _checked=False: run(action))
        return button

    def show_settings(self, settings: Settings) -> None:
        """Make every control show the current settings (without acting on them)."""
        for name, (_, field) in TOGGLE_BUTTONS.items():
            self.toggles[name].setChecked(bool(getattr(settings, field)))
        self.opacity.blockSignals(True)
        self.opacity.setValue(round(settings.overlay_opacity * 100))
        self.opacity.blockSignals(False)
        self.engine.show_engine(settings.engine)
        self.vcam.setChecked(settings.vcam_enabled)
        self.vcam.setText("Virtual camera: on" if settings.vcam_enabled else "Virtual camera: off")

    def show_blocked(self, reasons: dict[str, str | None]) -> None:
        """Disable the controls that cannot work now; their tooltip says why."""
        for action, reason in reasons.items():
            button = self.calibrate if action == "calibrate" else self.toggles.get(action)
            if button is None:
                continue
            button.setEnabled(reason is None)
            button.setToolTip(reason or tooltip(action))
