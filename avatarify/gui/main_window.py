"""The main window: a view over a `Session`. It shows the frames and every part's status, and hands each key press,
click and remedy to the session's controller; what it shows comes from the session and the settings model."""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Callable

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QCheckBox, QFileDialog, QMainWindow, QMessageBox, QVBoxLayout, QWidget

from ..core.errors import AvatarifyError
from ..core.settings import Settings
from ..core.status import ComponentStatus, Remedy, State
from ..pipeline.frames import PipelineFrame, PipelineStats
from ..pipeline.vcam import backends_here, list_virtual_cameras
from ..session import ACTIONS, Controller, Session
from .about import AboutDialog
from .bridge import SessionBridge
from .controls import ControlBar
from .downloads import LivePortraitSource, WeightsDownload, WeightsSource
from .gallery import AvatarGallery
from .hotkeys import HOTKEYS, MENUS, HotkeyHelpDialog, create_action, install_shortcuts
from .problems import ProblemPanel
from .settings_dialog import SettingsDialog
from .status_line import StatusLine
from .tasks import Task
from .views import PreviewPanes

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 250
CALIBRATE_HINT = "Look straight at the camera with a neutral face and press C to calibrate."
MODEL_FILTER = "FOMM checkpoints (*.pth.tar *.pth *.tar);;All files (*)"


class MainWindow(QMainWindow):
    """Camera preview and avatar output, controls, gallery, problems with their remedies, and a status bar."""

    def __init__(
        self,
        session: Session,
        controller: Controller | None = None,
        settings_file: Path | None = None,
        weights: WeightsSource | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.controller = controller or Controller(session)
        self.settings_file = settings_file
        self.settings_dialog: SettingsDialog | None = None
        self.help_dialog: HotkeyHelpDialog | None = None
        self.about_dialog: AboutDialog | None = None
        self.statuses: dict[str, ComponentStatus] = session.statuses()
        self.last_frame: PipelineFrame | None = None
        self.frames_shown = 0
        self._quitting = False
        self._hinted = False
        self.setWindowTitle("Avatarify")
        self.setAcceptDrops(True)
        self.bridge = SessionBridge(self)
        self.weights = weights or WeightsSource()
        self.download = WeightsDownload(self.weights, self)
        self.panes = PreviewPanes(self)
        self.preview, self.output = self.panes.camera.view, self.panes.output.view
        settings = session.settings
        self.controls = ControlBar(
            self.run_action, lambda value: settings.update(overlay_opacity=value),
            lambda on: settings.update(vcam_enabled=on), self,
        )  # fmt: skip
        self.gallery = AvatarGallery(session.avatars, self.run_action, lambda: settings.value.passthrough, self)
        self.problems = ProblemPanel(self)
        self.status_line = StatusLine(self.statusBar(), self)
        handlers: dict[str, Callable[..., None]] = {name: partial(self.run_action, name) for name in ACTIONS}
        handlers.update(self._window_actions())
        self.actions_by_name = {e.action: create_action(self, e.action, handlers[e.action]) for e in HOTKEYS if not e.indexed}
        self.shortcuts = install_shortcuts(self, handlers)
        self._build()
        self._connect()
        self._settings_changed(settings.value, settings.value)
        self.resize(1200, 820)

    def _window_actions(self) -> dict[str, Callable[[], None]]:
        return {
            "fullscreen": lambda: self.showNormal() if self.isFullScreen() else self.showFullScreen(),
            "leave_fullscreen": self._leave_fullscreen,
            "settings": self.open_settings,
            "help": lambda: self._open_dialog("help_dialog", HotkeyHelpDialog(self)),
            "about": lambda: self._open_dialog("about_dialog", AboutDialog(self.settings_file, self, self._report)),
            "quit": self.request_quit,
        }

    def _build(self) -> None:
        bar = self.menuBar()
        menus = {name: bar.addMenu(f"&{name}") for name in MENUS}
        for entry in HOTKEYS:
            if entry.action in self.actions_by_name:
                menus[entry.menu].addAction(self.actions_by_name[entry.action])
        menus["Avatar"].addAction("Add avatars from pictures…").triggered.connect(lambda: self.gallery.choose_files())
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(10)
        layout.addWidget(self.panes, 1)
        layout.addWidget(self.controls)
        layout.addWidget(self.gallery)
        self.setCentralWidget(central)
        self.panes.set_overlay(self.problems)  # floats over the previews: problems never move them

    def _connect(self) -> None:
        self.bridge.frame.connect(self._show_frame)
        self.bridge.status.connect(self._status_changed)
        self.bridge.settings_changed.connect(self._settings_changed)
        self.bridge.attach(self.session)
        self.problems.remedy.connect(self._remedy)
        self.problems.changed.connect(self.panes.place_overlay)
        self.gallery.error.connect(self.show_notice)
        self.gallery.changed.connect(self._refresh)
        self.controls.camera.chosen.connect(lambda spec: self.session.settings.update(camera=spec))
        self.controls.engine.chosen.connect(lambda engine: self.session.settings.update(engine=engine))
        self.download.progress.connect(lambda value: self._model_row_progress(value))
        self.download.finished.connect(lambda path: self.session.load_model(path))
        self.download.failed.connect(lambda message: self.show_notice(f"Download failed: {message}"))
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._refresh)
        self._timer.start()
        for name, status in self.statuses.items():
            self.problems.show_status(name, status)
        task = Task(_list_cameras, self)
        task.succeeded.connect(self.controls.camera.set_cameras)
        task.start()

    # -- actions -----------------------------------------------------------------------------------

    def run_action(self, name: str, *args: object) -> None:
        """Perform a controller action; what it says goes to the status bar, what went wrong to a notice."""
        try:
            message = self.controller.run(name, *args)
        except AvatarifyError as exc:
            self.show_notice(str(exc))
            return
        except Exception as exc:  # a control that fails is reported; the window carries on
            log.warning("Control %s failed: %s", name, exc, exc_info=True)
            self.show_notice(f"{name} failed: {exc}")
            return
        if name == "calibrate":
            self.problems.clear_notice("hint")
        if message:
            self.statusBar().showMessage(message, 3000)
        self.gallery.sync()
        self._refresh()

    def show_notice(self, message: str) -> None:
        """A problem that belongs to no component (a picture that could not be added, an action that failed)."""
        log.warning("%s", message)
        self.problems.notice(message)

    def _remedy(self, component: str, remedy: Remedy) -> None:
        settings = self.session.settings
        liveportrait = settings.value.engine == "liveportrait"
        if remedy is Remedy.DOWNLOAD_WEIGHTS:
            self.download.start(LivePortraitSource() if liveportrait else self.weights)
        elif remedy is Remedy.LOCATE_WEIGHTS:
            if liveportrait:
                name = QFileDialog.getExistingDirectory(self, "Locate LivePortrait's weights folder", str(Path.home()))
            else:
                name, _ = QFileDialog.getOpenFileName(self, "Locate the model weights", str(Path.home()), MODEL_FILTER)
            if name:
                self.session.load_model(Path(name))
        elif remedy is Remedy.USE_CPU:
            settings.update(model_device="cpu")
        elif remedy is Remedy.CHOOSE_CAMERA:
            self.controls.camera.showPopup()
        elif remedy is Remedy.VIDEO_FILE:
            self.controls.camera.choose_file()
        elif remedy is Remedy.SETUP_VCAM:
            row = self.problems.row(component)
            if row is not None:
                row.details_button.setChecked(True)
        elif remedy is Remedy.LANDMARK_FILE:
            self._place_landmark_file()

    def _place_landmark_file(self) -> None:
        from ..model.landmarks import LandmarkDetector

        name, _ = QFileDialog.getOpenFileName(self, "The face landmark network (2DFAN4-….pth.tar)", str(Path.home()))
        if name:
            try:
                LandmarkDetector.install_weights(Path(name))
            except OSError as exc:
                self.show_notice(f"Could not copy {name}: {exc.strerror or exc}.")
                return
            self.session.reload_landmarks()

    def _model_row_progress(self, value: int) -> None:
        row = self.problems.row("model")
        if row is not None:
            row.progress.setVisible(True)
            row.progress.setValue(value)

    # -- what the session reports ---------------------------------------------------------------------

    def _show_frame(self, frame: PipelineFrame) -> None:
        try:
            previous, self.last_frame = self.last_frame, frame
            self.preview.set_frame(frame.preview)
            self.output.set_frame(frame.output)
            (ph, pw), (oh, ow) = frame.preview.shape[:2], frame.output.shape[:2]
            self.panes.set_aspects(pw / ph, ow / oh)
            self.frames_shown += 1
            if previous is None or (previous.animated, previous.note) != (frame.animated, frame.note):
                self._refresh()  # paused or running again: say so at once
        finally:
            self.bridge.frame_done()

    @property
    def last_stats(self) -> PipelineStats | None:
        return None if self.last_frame is None else self.last_frame.stats

    def _status_changed(self, component: str, status: ComponentStatus) -> None:
        self.statuses[component] = status
        self.problems.show_status(component, status)
        if component == "model" and status.state is State.RUNNING and not self._hinted:
            self._hinted = True
            self.problems.notice(CALIBRATE_HINT, key="hint")
        self._refresh()

    def _settings_changed(self, _old: Settings, new: Settings) -> None:
        self.controls.show_settings(new)
        checked = {"find_best_frame": new.find_best_frame, "passthrough": new.passthrough, "landmarks": new.show_landmarks,
                   "mirror_preview": new.mirror_preview, "mirror_output": new.mirror_output, "stats": new.show_stats}
        for name, value in checked.items():
            self.actions_by_name[name].setChecked(value)
        self.gallery.sync()
        self._refresh()

    def _refresh(self) -> None:
        """Titles, status bar, control availability and the stats overlay, from the session as it is now."""
        settings = self.session.settings.value
        frame = self.last_frame
        idle = "idle (passthrough)" if settings.passthrough else ""
        if frame is not None and not frame.animated and not settings.passthrough and frame.note:
            idle = f"paused: {frame.note}"
        self.status_line.update(self.statuses, self.last_stats, idle)
        self.controls.show_blocked({name: self.controller.blocked(name) for name in ("calibrate", "find_best_frame")})
        self.panes.show_stats(self.last_stats.lines() if settings.show_stats and self.last_stats else None)
        camera = self.session.pipeline.snapshot.camera
        spec = self.session.camera_spec or settings.camera
        if self.controls.camera.spec != spec:
            self.controls.camera.show_playing(spec)
        self.panes.camera.title.setText(f"Camera · {camera.name}" if camera is not None else f"Camera · {spec} (not open)")
        name = self.session.avatars.name
        if settings.passthrough:
            title = "Output · passthrough: your camera goes out"
        elif name is None:
            title = "Avatar output · no avatar"
        else:
            title = f"Avatar output · {name}" + (f" — {idle}" if idle.startswith("paused") else "")
        self.panes.output.title.setText(title)

    # -- dialogs ---------------------------------------------------------------------------------------

    def _report(self) -> str:
        """The diagnostics for this session's model choice, without timing (that would load every backend)."""
        from ..session.doctor import build_report

        settings = self.session.settings.value
        return build_report(self.session.options.model(settings.engine, settings.model_device, None), frames=0)

    def _leave_fullscreen(self) -> None:
        """Esc: only leaves full screen; it never quits (dialogs and popups handle their own Esc)."""
        if self.isFullScreen():
            self.showNormal()

    def _open_dialog(self, attribute: str, dialog) -> None:
        setattr(self, attribute, dialog)
        dialog.open()

    def open_settings(self) -> None:
        dialog = SettingsDialog(
            self.session.settings.value, ["auto", *self.session.devices()], backends_here(), list_virtual_cameras(), self
        )
        dialog.accepted.connect(lambda: self.session.settings.replace(dialog.values()))
        self._open_dialog("settings_dialog", dialog)

    def request_quit(self) -> None:
        """Quit, asking first while the virtual camera is sending (unless the user said not to ask again)."""
        sending = self.statuses.get("vcam", ComponentStatus()).state is State.RUNNING
        if sending and self.session.settings.value.confirm_quit:
            box = QMessageBox(QMessageBox.Question, "Quit avatarify",
                              "The virtual camera is sending: apps using it will lose the picture. Quit anyway?",
                              QMessageBox.Yes | QMessageBox.Cancel, self)  # fmt: skip
            box.setDefaultButton(QMessageBox.Cancel)
            never = QCheckBox("Don't ask again", box)
            box.setCheckBox(never)
            if box.exec_() != QMessageBox.Yes:
                return
            if never.isChecked():
                self.session.settings.update(confirm_quit=False)
        self.shutdown()

    def shutdown(self) -> None:
        """Close the window without asking (Ctrl+C, SIGTERM, or after the user confirmed)."""
        self._quitting = True
        self.close()

    # -- window events ---------------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if not self._quitting:
            event.ignore()
            self.request_quit()
            return
        self._timer.stop()
        super().closeEvent(event)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == event.WindowStateChange and hasattr(self, "actions_by_name"):
            self.actions_by_name["fullscreen"].setChecked(self.isFullScreen())

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.gallery.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.gallery.dropEvent(event)


def _list_cameras():
    from ..pipeline.camera import list_cameras

    try:
        return list_cameras()
    except OSError as exc:
        log.warning("Cannot list cameras: %s", exc)
        return []
