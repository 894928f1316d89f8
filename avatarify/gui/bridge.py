"""Carrying what the session's threads produce (frames, statuses, settings changes) to the GUI thread as Qt signals."""
from __future__ import annotations

import threading

from PyQt5.QtCore import QObject, pyqtSignal

from ..core.settings import Settings, SettingsModel
from ..core.status import ComponentStatus
from ..session import Session

# Frames emitted but not yet painted; beyond this the newest frames are dropped so a busy
# GUI thread never queues up latency.
MAX_PENDING_FRAMES = 2


class SessionBridge(QObject):
    """Re-emits the session's frames, component statuses and settings changes as queued Qt signals."""

    frame = pyqtSignal(object)  # PipelineFrame
    status = pyqtSignal(str, object)  # component name, ComponentStatus
    settings_changed = pyqtSignal(object, object)  # old Settings, new Settings

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._pending = 0
        self.dropped = 0

    def attach(self, session: Session) -> None:
        session.pipeline.add_listener(self.post_frame)
        session.add_status_listener(self.post_status)
        self.follow(session.settings)

    def follow(self, settings: SettingsModel) -> None:
        settings.observe(lambda old, new: self.settings_changed.emit(old, new))

    def post_frame(self, frame: object) -> None:
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

    def post_status(self, name: str, status: ComponentStatus) -> None:
        self.status.emit(name, status)


def changed(old: Settings, new: Settings, *names: str) -> bool:
    """Whether any of the fields `names` differs between two settings."""
    return any(getattr(old, name) != getattr(new, name) for name in names)
