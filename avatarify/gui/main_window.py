"""The main window: camera preview and avatar output side by side, gallery, controls and status bar."""
from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Callable

from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..model.device import CPU_WARNING
from ..pipeline.frames import PipelineFrame, PipelineStats
from ..pipeline.camera import FrameSource
from ..pipeline.pipeline import Pipeline
from ..model.predictor import AvatarPredictor
from ..pipeline.vcam import list_virtual_cameras
from ..model.weights import candidate_paths
from . import devices
from .first_run import FirstRunPanel, WeightsSource
from .frame_view import FrameView
from .gallery import AvatarGallery
from .hotkeys import MENUS, HOTKEYS, HotkeyHelpDialog, create_action, install_shortcuts, tooltip
from .messages import MessageBanner
from .settings import AppSettings, SettingsStore
from .settings_dialog import SettingsDialog
from .tasks import Task

log = logging.getLogger(__name__)

ZOOM_STEP = 1.1
MOVE_STEP = 0.02
OPACITY_STEP = 0.1
STATUS_INTERVAL_MS = 250
# Frames emitted but not yet painted; beyond this the newest frames are dropped so a busy
# GUI thread never queues up latency.
MAX_PENDING_FRAMES = 2


class FrameBridge(QObject):
    """Carries frames and error messages from pipeline threads to the GUI thread as Qt signals."""

    frame = pyqtSignal(object)  # PipelineFrame: preview and output numpy arrays with stats
    error = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending = 0
        self.dropped = 0

    def post_frame(self, frame: PipelineFrame) -> None:
        """Called on a pipeline thread."""
        with self._lock:
            if self._pending >= MAX_PENDING_FRAMES:
                self.dropped += 1
                return
            self._pending += 1
        self.frame.emit(frame)

    def frame_done(self) -> None:
        """Called on the GUI thread once a frame was shown."""
        with self._lock:
            self._pending -= 1

    def post_error(self, message: str) -> None:
        self.error.emit(message)


def _pane(title: str, view: FrameView, parent: QWidget) -> tuple[QFrame, QLabel]:
    frame = QFrame(parent)
    frame.setObjectName("pane")
    heading = QLabel(title, frame)
    heading.setObjectName("paneTitle")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(8, 6, 8, 8)
    layout.setSpacing(6)
    layout.addWidget(heading)
    layout.addWidget(view, 1)
    return frame, heading


# (AppSettings field, PipelineSettings field): the settings both the app and the pipeline keep.
# The pipeline changes each with its method `set_<AppSettings field>`.
SHARED_FIELDS = (
    ("smart_crop", "smart_crop"),
    ("output_keep_aspect", "output_keep_aspect"),
    ("mirror_preview", "mirror_preview"),
    ("mirror_output", "mirror_output"),
    ("overlay_opacity", "overlay_opacity"),
    ("relative", "relative"),
    ("adapt_scale", "adapt_movement_scale"),
    ("motion_strength", "motion_strength"),
)


class MainWindow(QMainWindow):
    """A thin view over a running `Pipeline`: shows its frames, forwards keys and clicks to its controls."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: AppSettings,
        store: SettingsStore | None = None,
        model: devices.ModelOptions | None = None,
        weights_source: WeightsSource | None = None,
    ) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.settings = settings
        self.store = store
        self.model = model or devices.ModelOptions()
        self.settings_dialog: SettingsDialog | None = None
        self.help_dialog: HotkeyHelpDialog | None = None
        self._tasks: set[Task] = set()
        self._last_stats: PipelineStats | None = None
        self.frames_shown = 0  # frames painted so far
        self.setWindowTitle("Avatarify")
        self.setAcceptDrops(True)

        self.bridge = FrameBridge(self)
        self.bridge.frame.connect(self._show_frame)
        self.bridge.error.connect(self._pipeline_error)
        self._pipeline_message: str | None = None

        self.banner = MessageBanner(self)
        self.first_run = FirstRunPanel(weights_source, self)
        self.first_run.setVisible(False)
        self.first_run.checkpoint_ready.connect(self.load_model)
        self.preview = FrameView("Waiting for the camera…", self)
        self.output = FrameView("The avatar appears here", self)
        preview_pane, self.preview_title = _pane("Camera", self.preview, self)
        output_pane, self.output_title = _pane("Avatar output", self.output, self)
        self.gallery = AvatarGallery(pipeline, self)
        self.gallery.error.connect(self.show_error)
        self.gallery.changed.connect(self._after_control)

        self.handlers: dict[str, Callable[..., None]] = self._handlers()
        self.actions_by_name = {
            entry.action: create_action(self, entry.action, self.handlers[entry.action])
            for entry in HOTKEYS
            if not entry.indexed
        }
        self.shortcuts = install_shortcuts(self, self.handlers)
        self._build_menus()

        views = QHBoxLayout()
        views.setSpacing(10)
        views.addWidget(preview_pane, 1)
        views.addWidget(output_pane, 1)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(10)
        layout.addWidget(self.banner)
        layout.addWidget(self.first_run)
        layout.addLayout(views, 1)
        layout.addLayout(self._build_controls())
        layout.addWidget(self.gallery)
        self.setCentralWidget(central)
        self._build_status_bar()

        self._status_timer = QTimer(self)
        self._status_timer.setInterval(STATUS_INTERVAL_MS)
        self._status_timer.timeout.connect(self._update_status)
        self._status_timer.start()
        pipeline.add_listener(self.bridge.post_frame)
        pipeline.add_error_listener(self.bridge.post_error)
        self._sync_controls()
        self.resize(1200, 820)

    # -- construction ------------------------------------------------------------------------

    def _handlers(self) -> dict[str, Callable[..., None]]:
        p = self.pipeline

        def toggle(setter: Callable[[bool], None], field: str) -> Callable[[], None]:
            return lambda: setter(not getattr(p.settings, field))

        def move(dx: float, dy: float) -> Callable[[], None]:
            return lambda: p.move_crop(dx, dy)

        raw: dict[str, Callable[..., None]] = {
            "calibrate": self.calibrate,
            "find_best_frame": toggle(p.set_find_best_frame, "find_best_frame"),
            "passthrough": toggle(p.set_passthrough, "passthrough"),
            "previous_avatar": lambda: self._drive(p.previous_avatar),
            "next_avatar": lambda: self._drive(p.next_avatar),
            "select_avatar": self.select_avatar,
            "reload_avatars": self.gallery.reload,
            "zoom_in": lambda: p.zoom_crop(ZOOM_STEP),
            "zoom_out": lambda: p.zoom_crop(1 / ZOOM_STEP),
            "move_crop_up": move(0.0, -MOVE_STEP),
            "move_crop_down": move(0.0, MOVE_STEP),
            "move_crop_left": move(-MOVE_STEP, 0.0),
            "move_crop_right": move(MOVE_STEP, 0.0),
            "reset_crop": p.reset_crop,
            "overlay_less": lambda: p.set_overlay_opacity(max(0.0, round(p.settings.overlay_opacity - OPACITY_STEP, 2))),
            "overlay_more": lambda: p.set_overlay_opacity(min(1.0, round(p.settings.overlay_opacity + OPACITY_STEP, 2))),
            "landmarks": toggle(p.set_show_landmarks, "show_landmarks"),
            "mirror_preview": toggle(p.set_mirror_preview, "mirror_preview"),
            "mirror_output": toggle(p.set_mirror_output, "mirror_output"),
            "stats": toggle(p.set_show_stats, "show_stats"),
            "fullscreen": self.toggle_fullscreen,
            "settings": self.open_settings,
            "help": self.open_help,
            "quit": self.quit,
        }

        def controlled(handler: Callable[..., None]) -> Callable[..., None]:
            def run(*args) -> None:
                try:
                    handler(*args)
                except Exception as exc:  # a control that fails is reported, the window carries on
                    log.warning("Control failed: %s", exc, exc_info=True)
                    self.show_error(str(exc))
                self._after_control()

            return run

        return {name: controlled(handler) for name, handler in raw.items()}

    def _build_menus(self) -> None:
        bar = self.menuBar()
        menus = {name: bar.addMenu(f"&{name}") for name in MENUS}
        for entry in HOTKEYS:
            if entry.action in self.actions_by_name:
                menus[entry.menu].addAction(self.actions_by_name[entry.action])
        add = menus["Avatar"].addAction("Add avatar from a picture…")
        add.triggered.connect(lambda: self.gallery.choose_files())
        remove = menus["Avatar"].addAction("Remove the selected avatar…")
        remove.triggered.connect(lambda: self.gallery.ask_remove())

    def _button(self, action: str, text: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text, self)
        button.setToolTip(tooltip(action))
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.NoFocus)  # keys stay with the window's hotkeys
        button.clicked.connect(lambda _checked=False: self.handlers[action]())
        return button

    def _build_controls(self) -> QHBoxLayout:
        self.calibrate_button = self._button("calibrate", "Calibrate")
        self.calibrate_button.setObjectName("primary")
        self.passthrough_button = self._button("passthrough", "Passthrough", checkable=True)
        self.best_frame_button = self._button("find_best_frame", "Find best frame", checkable=True)
        self.landmarks_button = self._button("landmarks", "Landmarks", checkable=True)
        self.mirror_button = self._button("mirror_preview", "Mirror", checkable=True)
        self.opacity_slider = QSlider(Qt.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setFixedWidth(160)
        self.opacity_slider.setFocusPolicy(Qt.NoFocus)
        self.opacity_slider.setToolTip(
            f"Avatar overlay on the camera preview, to match its pose before calibrating "
            f"({tooltip('overlay_less')}; {tooltip('overlay_more')})"
        )
        self.opacity_slider.valueChanged.connect(self._opacity_slider_moved)
        settings_button = self._button("settings", "Settings")
        help_button = self._button("help", "Shortcuts")
        row = QHBoxLayout()
        row.setSpacing(8)
        for widget in (self.calibrate_button, self.passthrough_button, self.best_frame_button):
            row.addWidget(widget)
        row.addSpacing(12)
        overlay_label = QLabel("Overlay", self)
        overlay_label.setObjectName("hint")
        row.addWidget(overlay_label)
        row.addWidget(self.opacity_slider)
        row.addSpacing(12)
        row.addWidget(self.landmarks_button)
        row.addWidget(self.mirror_button)
        row.addStretch(1)
        row.addWidget(settings_button)
        row.addWidget(help_button)
        return row

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.camera_label = QLabel(self)
        self.model_label = QLabel(self)
        self.device_label = QLabel(self)
        self.vcam_label = QLabel(self)
        for label in (self.camera_label, self.model_label, self.device_label, self.vcam_label):
            label.setObjectName("statusItem")
            bar.addPermanentWidget(label)

    # -- frames and status -------------------------------------------------------------------

    def _show_frame(self, frame: PipelineFrame) -> None:
        try:
            self.preview.set_frame(frame.preview)
            self.output.set_frame(frame.output)
            self._last_stats = frame.stats
            self.frames_shown += 1
        finally:
            self.bridge.frame_done()

    @property
    def last_stats(self) -> PipelineStats | None:
        """The statistics that came with the newest frame shown."""
        return self._last_stats

    def _update_status(self) -> None:
        self._clear_solved_problem()
        stats = self._last_stats
        if stats is None:
            return
        self.camera_label.setText(f"Camera {stats.camera_fps:.1f} fps")
        if stats.device == "none":
            self.model_label.setText("Model: not loaded")
        else:
            self.model_label.setText(f"Model {stats.model_fps:.1f} fps · {stats.model_ms:.0f} ms")
        on_cpu = stats.device.split(":")[0] == "cpu"
        self.device_label.setText(f"⚠ {stats.device.upper()}: slow, use a GPU" if on_cpu else f"Device {stats.device}")
        self.device_label.setProperty("warning", on_cpu)
        self.device_label.setToolTip(CPU_WARNING if on_cpu else "")
        unavailable = stats.vcam_state.startswith("unavailable")
        # The full reason is long (install hints); the banner and the tooltip carry it.
        self.vcam_label.setText("Virtual camera: unavailable" if unavailable else f"Virtual camera: {stats.vcam_state}")
        self.vcam_label.setToolTip(stats.vcam_state if unavailable else "")
        self.vcam_label.setProperty("warning", unavailable)
        for label in (self.device_label, self.vcam_label):
            label.style().unpolish(label)
            label.style().polish(label)

    def _pipeline_error(self, message: str) -> None:
        self._pipeline_message = message
        self.show_error(message)

    def _clear_solved_problem(self) -> None:
        """Hide a pipeline problem once the pipeline says it is over (camera back, virtual camera open)."""
        message = self._pipeline_message
        if message is not None and self.banner.message == message and message not in self.pipeline.errors.values():
            self.banner.dismiss()
            self._pipeline_message = None

    def show_error(self, message: str) -> None:
        """Show a problem as a readable message in the window."""
        log.warning("%s", message)
        self.banner.show_message(message)

    # -- controls ----------------------------------------------------------------------------

    def calibrate(self) -> None:
        self.pipeline.calibrate()
        self.statusBar().showMessage("Calibrated: your current pose is the neutral pose.", 3000)

    def _drive(self, step: Callable[[], None]) -> None:
        step()
        self.pipeline.set_passthrough(False)

    def select_avatar(self, index: int) -> None:
        """Drive avatar `index` (0-based) if the gallery has it."""
        if index < len(self.pipeline.avatars):
            self._drive(lambda: self.pipeline.select_avatar(index))

    def toggle_fullscreen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()

    def quit(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.close()

    def open_help(self) -> None:
        self.help_dialog = HotkeyHelpDialog(self)
        self.help_dialog.open()

    def _opacity_slider_moved(self, value: int) -> None:
        if round(self.pipeline.settings.overlay_opacity * 100) != value:
            self.pipeline.set_overlay_opacity(value / 100)
            self._after_control()

    def _after_control(self) -> None:
        self._sync_controls()
        self._remember()

    def _sync_controls(self) -> None:
        """Reflect the pipeline's state in the checkable actions, buttons, slider and gallery."""
        s = self.pipeline.settings
        checked = {
            "find_best_frame": s.find_best_frame,
            "passthrough": s.passthrough,
            "landmarks": s.show_landmarks,
            "mirror_preview": s.mirror_preview,
            "mirror_output": s.mirror_output,
            "stats": s.show_stats,
            "fullscreen": self.isFullScreen(),
        }
        for name, value in checked.items():
            self.actions_by_name[name].setChecked(value)
        self.passthrough_button.setChecked(s.passthrough)
        self.best_frame_button.setChecked(s.find_best_frame)
        self.landmarks_button.setChecked(s.show_landmarks)
        self.mirror_button.setChecked(s.mirror_preview)
        self.opacity_slider.blockSignals(True)
        self.opacity_slider.setValue(round(s.overlay_opacity * 100))
        self.opacity_slider.blockSignals(False)
        self.gallery.sync()
        index = self.pipeline.avatar_index
        if s.passthrough or index is None:
            self.output_title.setText("Output · passthrough (camera unchanged)")
        else:
            self.output_title.setText(f"Avatar output · {self.pipeline.avatars.names[index]}")

    # -- settings ----------------------------------------------------------------------------

    def _remember(self) -> None:
        """Copy what the controls changed into the app settings and save them."""
        s = self.pipeline.settings
        updates = {app_field: getattr(s, pipe_field) for app_field, pipe_field in SHARED_FIELDS}
        index = self.pipeline.avatar_index
        if index is not None and index < len(self.pipeline.avatars):
            updates["avatar"] = self.pipeline.avatars.names[index]
        self._save(dataclasses.replace(self.settings, **updates))

    def _save(self, settings: AppSettings) -> None:
        if settings == self.settings:
            return
        self.settings = settings
        if self.store is not None:
            try:
                self.store.save(settings)
            except OSError as exc:
                self.show_error(f"Could not save the settings to {self.store.path}: {exc.strerror or exc}.")

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.settings, devices.cameras(), list_virtual_cameras(), self)
        self.settings_dialog.accepted.connect(lambda: self.apply_settings(self.settings_dialog.values()))
        self.settings_dialog.open()

    def apply_settings(self, new: AppSettings) -> None:
        """Hand every changed setting to the pipeline (reopening camera, virtual camera or model as needed)."""
        old = self.settings
        for name, _ in SHARED_FIELDS:
            if getattr(new, name) != getattr(old, name):
                getattr(self.pipeline, f"set_{name}")(getattr(new, name))
        self._save(new)
        if (new.camera, new.camera_width, new.camera_height) != (old.camera, old.camera_width, old.camera_height):
            self.open_camera()
        if (new.vcam_enabled, new.vcam_device, new.vcam_backend) != (old.vcam_enabled, old.vcam_device, old.vcam_backend):
            self.open_output()
        if (new.model_device, new.checkpoint) != (old.model_device, old.checkpoint):
            self.load_model(Path(new.checkpoint) if new.checkpoint else None)
        self._sync_controls()

    # -- devices and model (opened off the GUI thread) -----------------------------------------

    def _run(self, function: Callable[[], object], done: Callable[[object], None], failed: Callable[[str], None]) -> None:
        task = Task(function, self)
        self._tasks.add(task)
        task.succeeded.connect(done)
        task.failed.connect(failed)
        task.done.connect(lambda: self._tasks.discard(task))
        task.start()

    def open_camera(self) -> None:
        """Switch to the camera the settings name."""
        settings = self.settings
        self.preview_title.setText(f"Camera · opening {settings.camera}…")
        self._run(lambda: devices.open_camera(settings), self._camera_opened, self._camera_failed)

    def _camera_failed(self, message: str) -> None:
        self.preview_title.setText(f"Camera · {self.pipeline.camera.name}")
        self.show_error(message)

    def _camera_opened(self, camera: FrameSource) -> None:
        self.pipeline.set_camera(camera)
        self.preview_title.setText(f"Camera · {camera.name}")

    def open_output(self) -> None:
        """Switch the virtual camera on or off, or to another device, as the settings say."""
        # Cheap: the virtual camera opens with the first frame; problems arrive as pipeline errors.
        self.pipeline.set_output(devices.open_output(self.settings))

    def load_model(self, checkpoint: Path | None = None) -> None:
        """Load the model (from `checkpoint`, else the settings' or the usual lookup) and hand it to the pipeline."""
        settings = self.settings
        if checkpoint is not None and not self.first_run.isHidden() and checkpoint not in candidate_paths():
            # A file the user located on the first-run panel becomes the configured checkpoint
            # (downloaded weights are found by the usual lookup).
            self._save(dataclasses.replace(settings, checkpoint=str(checkpoint)))
            settings = self.settings
        self.output.set_placeholder("Loading the model…")
        self._run(lambda: devices.load_predictor(settings, self.model, checkpoint), self._model_loaded, self._model_failed)

    def _model_loaded(self, predictor: AvatarPredictor) -> None:
        self.pipeline.set_predictor(predictor)
        self.first_run.setVisible(False)
        self.statusBar().showMessage("Model loaded.", 3000)
        self._sync_controls()

    def _model_failed(self, message: str) -> None:
        self.output.set_placeholder("No model loaded: passthrough only")
        self.show_error(message)
        if self.model.remote is None:
            self.show_first_run(message)

    def show_first_run(self, problem: str | None = None) -> None:
        """Offer the weights download (no model could be loaded)."""
        self.first_run.setVisible(True)
        if problem:
            self.first_run.show_problem(problem)

    # -- window events -----------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.gallery.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.gallery.dropEvent(event)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.WindowStateChange and hasattr(self, "actions_by_name"):
            self.actions_by_name["fullscreen"].setChecked(self.isFullScreen())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._status_timer.stop()
        super().closeEvent(event)
