"""What each part of a session is doing, in words a user can act on: a state, one line, and the remedies."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class State(str, Enum):
    """The life of a component: off (not wanted), starting, running, or failed (with a reason)."""

    OFF = "off"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


class Remedy(str, Enum):
    """Something the user can do about a problem; the window shows each as a button."""

    DOWNLOAD_WEIGHTS = "Download weights"
    LOCATE_WEIGHTS = "Locate file…"
    CHOOSE_CAMERA = "Choose camera"
    VIDEO_FILE = "Video file…"
    SETUP_VCAM = "Set up virtual camera"
    USE_CPU = "Use the CPU"
    LANDMARK_FILE = "Place landmark file…"


# The components a session reports on, in the order the status bar shows them.
COMPONENTS = ("camera", "model", "worker", "landmarks", "vcam")


@dataclass(frozen=True)
class ComponentStatus:
    """One component's state: `message` is one line; `detail` may hold more, `command` a setup step to copy."""

    state: State = State.OFF
    message: str = ""
    remedies: tuple[Remedy, ...] = ()
    detail: str = ""
    command: str = ""

    @property
    def failed(self) -> bool:
        return self.state is State.FAILED


OFF = ComponentStatus()


def starting(message: str) -> ComponentStatus:
    return ComponentStatus(State.STARTING, message)


def running(message: str, detail: str = "") -> ComponentStatus:
    return ComponentStatus(State.RUNNING, message, detail=detail)


def failed(message: str, *remedies: Remedy, detail: str = "", command: str = "") -> ComponentStatus:
    return ComponentStatus(State.FAILED, message, tuple(remedies), detail, command)
