"""The user's actions (hotkeys, buttons, menus) on a session, without Qt: tests drive them without a window.

Every action is a name in `ACTIONS`; `run(name)` performs it and returns a short confirmation to show, or
raises `AvatarifyError` with the reason it could not be done. `blocked(name)` says in advance why an action
cannot work now (no model, no landmarks, no avatars), so a window can disable its control with that tooltip.
"""
from __future__ import annotations

from collections.abc import Callable

from ..core.errors import AvatarifyError
from ..core.status import State
from .session import Session

ZOOM_STEP = 1.1
MOVE_STEP = 0.02
OPACITY_STEP = 0.1
TOGGLES = {
    "find_best_frame": "find_best_frame",
    "passthrough": "passthrough",
    "landmarks": "show_landmarks",
    "mirror_preview": "mirror_preview",
    "mirror_output": "mirror_output",
    "stats": "show_stats",
}
MOVES = {
    "move_crop_up": (0.0, -MOVE_STEP),
    "move_crop_down": (0.0, MOVE_STEP),
    "move_crop_left": (-MOVE_STEP, 0.0),
    "move_crop_right": (MOVE_STEP, 0.0),
}
ACTIONS = (
    "calibrate", *TOGGLES, "previous_avatar", "next_avatar", "select_avatar", "reload_avatars",
    "zoom_in", "zoom_out", *MOVES, "reset_crop", "overlay_less", "overlay_more",
)  # fmt: skip


class Controller:
    """Performs the named actions on `session`."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._actions: dict[str, Callable[..., str | None]] = {
            "calibrate": self.calibrate,
            "previous_avatar": lambda: self._drive(lambda: session.avatars.step(-1)),
            "next_avatar": lambda: self._drive(lambda: session.avatars.step(1)),
            "select_avatar": self.select_avatar,
            "reload_avatars": self.reload_avatars,
            "zoom_in": lambda: self._zoom(ZOOM_STEP),
            "zoom_out": lambda: self._zoom(1 / ZOOM_STEP),
            "reset_crop": self.reset_crop,
            "overlay_less": lambda: self._overlay(-OPACITY_STEP),
            "overlay_more": lambda: self._overlay(OPACITY_STEP),
        }
        for name, field in TOGGLES.items():
            self._actions[name] = lambda field=field: self._toggle(field)
        for name, (dx, dy) in MOVES.items():
            self._actions[name] = lambda dx=dx, dy=dy: self.move_crop(dx, dy)

    def run(self, name: str, *args: object) -> str | None:
        """Perform action `name`; AvatarifyError says why it could not be done."""
        reason = self.blocked(name)
        if reason is not None:
            raise AvatarifyError(reason)
        return self._actions[name](*args)

    def blocked(self, name: str) -> str | None:
        """Why action `name` cannot work now, or None when it can."""
        model_ready = self.session.slots["model"].status.state is State.RUNNING
        if name == "calibrate" and not model_ready:
            return "Calibrate needs the model, which is not running yet."
        if name == "find_best_frame" and not self.session.settings.value.find_best_frame:
            if not model_ready:
                return "Find best frame needs the model, which is not running yet."
            detector = self.session.pipeline.snapshot.landmarks
            if detector is not None and detector.unavailable:
                return f"Find best frame needs the face landmarks, which are {detector.state}"
        if name in ("previous_avatar", "next_avatar", "select_avatar") and not len(self.session.avatars.library):
            return "There are no avatars yet: add a picture first."
        return None

    def calibrate(self) -> str:
        self.session.pipeline.calibrate()
        return "Calibrated: your current pose is the neutral pose."

    def select_avatar(self, index: int) -> None:
        """Drive avatar `index` (0-based) if the gallery has it."""
        if index < len(self.session.avatars.library):
            self._drive(lambda: self.session.avatars.select(index))

    def reload_avatars(self) -> None:
        self.session.avatars.reload()

    def move_crop(self, dx: float, dy: float) -> None:
        """Move the crop by fractions of the frame size, as seen in the preview (mirrored or not)."""
        settings = self.session.settings.value
        sign = -1.0 if settings.mirror_preview else 1.0
        x, y = settings.crop_offset
        self.session.settings.update(crop_offset=(x + sign * dx, y + dy))

    def reset_crop(self) -> None:
        self.session.settings.update(crop_zoom=1.0, crop_offset=(0.0, 0.0))
        self.session.pipeline.reset_crop()

    def _drive(self, choose: Callable[[], object]) -> None:
        choose()
        self.session.settings.update(passthrough=False)

    def _toggle(self, field: str) -> None:
        settings = self.session.settings
        settings.update(**{field: not getattr(settings.value, field)})

    def _zoom(self, factor: float) -> None:
        settings = self.session.settings
        settings.update(crop_zoom=settings.value.crop_zoom * factor)

    def _overlay(self, step: float) -> None:
        settings = self.session.settings
        settings.update(overlay_opacity=round(settings.value.overlay_opacity + step, 2))
