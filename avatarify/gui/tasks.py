"""Running slow calls (model loading, downloads, opening devices) off the GUI thread."""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PyQt5.QtCore import QObject, pyqtSignal

from ..core.errors import AvatarifyError

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """A one-line message for the user: our own errors (and value errors) as they are, others with their type."""
    if isinstance(exc, (AvatarifyError, ValueError)):
        return str(exc)
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class Task(QObject):
    """Runs `function()` on a daemon thread; reports the result or a readable error on the GUI thread.

    A daemon thread, unlike a QThread, never holds up quitting: an interrupted weights download
    keeps its partial file and resumes next time.
    """

    succeeded = pyqtSignal(object)
    failed = pyqtSignal(str)
    done = pyqtSignal()

    def __init__(self, function: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._function = function
        self._thread = threading.Thread(target=self._run, name="avatarify-gui-task", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            result = self._function()
        except Exception as exc:  # every failure becomes a message in the window, never a crash
            log.warning("Background task failed: %s", exc, exc_info=not isinstance(exc, AvatarifyError))
            succeeded, outcome = False, describe_error(exc)
        else:
            succeeded, outcome = True, result
        try:  # the window may have closed meanwhile, deleting this object and its signals
            (self.succeeded if succeeded else self.failed).emit(outcome)
            self.done.emit()
        except RuntimeError:
            log.debug("Task finished after its window closed; result dropped.")
