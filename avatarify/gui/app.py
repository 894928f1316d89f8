"""Starting the desktop app: the QApplication, the pipeline built from the settings, and the main window."""
from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PyQt5.QtWidgets import QApplication

from ..core.errors import CheckpointError
from ..pipeline.avatars import AvatarLibrary
from ..pipeline.pipeline import Pipeline
from ..pipeline.settings import PipelineSettings
from . import devices
from .first_run import WeightsSource
from .main_window import SHARED_FIELDS, MainWindow
from .settings import AppSettings, SettingsStore
from .theme import apply_theme

log = logging.getLogger(__name__)


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), styled."""
    # Non-headless OpenCV points Qt at its own plugins; PyQt5 then aborts on a real display.
    os.environ.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Avatarify")
    app.setApplicationDisplayName("Avatarify")
    apply_theme(app)
    return app


@dataclass
class LaunchOptions:
    """What the command line chose for this session; unset values come from the saved settings."""

    camera: str | None = None
    avatar: str | None = None
    model: devices.ModelOptions = field(default_factory=devices.ModelOptions)
    settings_path: Path | None = None
    weights: WeightsSource | None = None


def pipeline_settings(settings: AppSettings) -> PipelineSettings:
    """The pipeline's starting state from the app settings."""
    return PipelineSettings(**{pipe_field: getattr(settings, app_field) for app_field, pipe_field in SHARED_FIELDS})


def _install_excepthook(window: MainWindow) -> None:
    """Unexpected errors in Qt callbacks are logged and shown in the window instead of aborting the app."""

    def hook(kind, value, tb) -> None:
        log.error("Unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        window.show_error(f"Unexpected error: {value} (details in the log)")

    sys.excepthook = hook


def launch(options: LaunchOptions) -> tuple[MainWindow, Pipeline]:
    """Build the pipeline and the window, start both; the model loads in the background."""
    create_application()
    store = SettingsStore(options.settings_path)
    settings = store.load()
    camera, camera_problem = devices.open_camera_or_pending(settings, options.camera)
    problems = [camera_problem] if camera_problem else []
    library = AvatarLibrary.default(options.avatar)
    pipeline = Pipeline(camera, library, None, None, pipeline_settings(settings))
    wanted = options.avatar or settings.avatar
    index = library.find(wanted) if wanted else None
    if options.avatar and index is None:
        problems.append(f"No avatar called {options.avatar!r}; pick one in the gallery or add it.")
    if index is not None:
        pipeline.select_avatar(index)  # otherwise the pipeline starts with the first avatar
    window = MainWindow(pipeline, settings, store, options.model, options.weights)
    window.preview_title.setText(f"Camera · {camera.name}")
    _install_excepthook(window)
    pipeline.start()
    window.show()
    for problem in problems:
        window.show_error(problem)
    if not len(library):
        window.show_error("No avatars yet: add a picture with “Add…” or drop one on the gallery.")
    if options.model.remote is not None:
        window.load_model()
    else:
        try:
            checkpoint = devices.checkpoint_path(settings, options.model)
        except CheckpointError as exc:
            window.show_first_run(str(exc))
        else:
            window.load_model(checkpoint)
    if settings.vcam_enabled:
        window.open_output()
    return window, pipeline


def run(options: LaunchOptions) -> int:
    """Run the app until its window closes."""
    app = create_application()
    _window, pipeline = launch(options)
    try:
        return app.exec_()
    finally:
        pipeline.stop()
