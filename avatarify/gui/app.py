"""Starting the desktop app: the QApplication, the session built from the saved settings, and the main window.

Ctrl+C in the terminal and SIGTERM close the window like the Quit command does (without asking), and the
session releases the camera and the virtual camera within a few seconds.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

from ..core.settings import SettingsModel
from ..core.settings_file import SettingsFile
from ..session import Controller, Session, SessionOptions
from .downloads import WeightsSource
from .main_window import MainWindow
from .theme import apply_theme

log = logging.getLogger(__name__)

# Python runs signal handlers only when it gets control; a timer hands it control this often.
SIGNAL_POLL_MS = 200
CLOSE_TIMEOUT = 3.0


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
    """What the command line chose: this session's options, the settings file and the weights source."""

    session: SessionOptions = field(default_factory=SessionOptions)
    settings_path: Path | None = None
    weights: WeightsSource | None = None


def _install_excepthook(window: MainWindow) -> None:
    """Unexpected errors in Qt callbacks are logged and shown in the window instead of aborting the app."""

    def hook(kind, value, tb) -> None:
        if issubclass(kind, KeyboardInterrupt):
            window.shutdown()
            return
        log.error("Unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        window.show_notice(f"Unexpected error: {kind.__name__}: {value} (details in the log)")

    sys.excepthook = hook


def _install_signal_handlers(window: MainWindow) -> QTimer:
    """SIGINT and SIGTERM close the window (no question asked); returns the timer that lets them run."""

    def stop(signum, _frame) -> None:
        log.info("Stopping (%s).", signal.Signals(signum).name)
        window.shutdown()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(SIGNAL_POLL_MS)
    return timer


def launch(options: LaunchOptions) -> tuple[MainWindow, Session]:
    """Build the session and the window and start both; the model and the camera open in the background."""
    create_application()
    store = SettingsFile(options.settings_path)
    settings = SettingsModel(store.load())
    session = Session(settings, options.session)
    window = MainWindow(session, Controller(session), store.path, options.weights)
    store.attach(settings, window.show_notice)
    _install_excepthook(window)
    window.show()
    for notice in session.start():
        window.show_notice(notice)
    return window, session


def run(options: LaunchOptions) -> int:
    """Run the app until its window closes; the session is closed within a few seconds after."""
    app = create_application()
    window, session = launch(options)
    timer = _install_signal_handlers(window)
    try:
        app.exec_()
    finally:
        timer.stop()
        if not session.close(timeout=CLOSE_TIMEOUT):
            log.warning("Some parts took longer than %.0f s to close.", CLOSE_TIMEOUT)
    return 0
