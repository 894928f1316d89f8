"""The session layer: one Qt-free owner of a real-time session's parts, their statuses, and the user's actions."""
from .controller import ACTIONS, Controller
from .options import SessionOptions
from .session import Session

__all__ = ["ACTIONS", "Controller", "Session", "SessionOptions"]
