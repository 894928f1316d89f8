"""One settings record for the whole app, and a model of it that tells its observers what changed.

`Settings` is frozen: whoever holds one holds a consistent whole, so a thread never sees half an update.
`SettingsModel` keeps the current one; `update` checks and clamps every value, replaces the record and calls
the observers of the fields that changed (the window's widgets, the settings file, the session), in the style
of napari's layer events.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any

MIN_CROP_ZOOM = 0.5
MAX_CROP_ZOOM = 4.0
MAX_CROP_OFFSET = 0.5
MAX_MOTION_STRENGTH = 3.0
MIN_CAMERA_SIDE = 16
MAX_CAMERA_SIDE = 7680
MAX_TEXT_LENGTH = 4096
# The model families: FOMM (the default, light enough for a CPU) and LivePortrait (512x512, for GPUs).
ENGINES = ("fomm", "liveportrait")

# Fields that live only for this session (hotkey toggles, the crop being adjusted); the rest is saved.
_SESSION_ONLY = {"metadata": {"persist": False}}


@dataclass(frozen=True)
class Settings:
    """Every choice the user makes, camera to motion. Empty strings mean "the default"."""

    camera: str = "0"  # camera index, camera name, or a video file / image folder
    camera_width: int = 1280
    camera_height: int = 720
    vcam_enabled: bool = True
    vcam_device: str = ""  # e.g. /dev/video9 on Linux; empty: the backend's default device
    vcam_backend: str = ""  # a pyvirtualcam backend (obs, unitycapture, v4l2loopback); empty: automatic
    output_keep_aspect: bool = False  # False: square output; True: padded to the camera's aspect
    smart_crop: bool = False
    mirror_preview: bool = True
    mirror_output: bool = False
    overlay_opacity: float = 0.0
    relative: bool = True
    adapt_scale: bool = True
    motion_strength: float = 1.0
    engine: str = "fomm"
    model_device: str = "auto"
    checkpoint: str = ""  # a checkpoint that loaded; empty: the usual lookup (see `avatarify weights`)
    avatar: str = ""  # name of the avatar driven last
    # While the model cannot animate (loading, worker away), send the camera instead of holding the avatar.
    camera_when_unavailable: bool = False
    confirm_quit: bool = True  # ask before quitting while the virtual camera is sending
    passthrough: bool = field(default=False, **_SESSION_ONLY)
    show_landmarks: bool = field(default=False, **_SESSION_ONLY)
    show_stats: bool = field(default=False, **_SESSION_ONLY)
    find_best_frame: bool = field(default=False, **_SESSION_ONLY)
    crop_zoom: float = field(default=1.0, **_SESSION_ONLY)
    crop_offset: tuple[float, float] = field(default=(0.0, 0.0), **_SESSION_ONLY)

    def checked(self) -> Settings:
        """The same settings with every number brought into its range (NaN and infinities become defaults)."""
        return dataclasses.replace(
            self,
            camera_width=_clamp_int(self.camera_width, MIN_CAMERA_SIDE, MAX_CAMERA_SIDE, 1280),
            camera_height=_clamp_int(self.camera_height, MIN_CAMERA_SIDE, MAX_CAMERA_SIDE, 720),
            overlay_opacity=_clamp(self.overlay_opacity, 0.0, 1.0, 0.0),
            motion_strength=_clamp(self.motion_strength, 0.0, MAX_MOTION_STRENGTH, 1.0),
            crop_zoom=_clamp(self.crop_zoom, MIN_CROP_ZOOM, MAX_CROP_ZOOM, 1.0),
            crop_offset=tuple(_clamp(v, -MAX_CROP_OFFSET, MAX_CROP_OFFSET, 0.0) for v in self.crop_offset),
            engine=self.engine if self.engine in ENGINES else "fomm",
        )


def persistent_fields() -> list[dataclasses.Field]:
    """The fields saved between runs."""
    return [f for f in fields(Settings) if f.metadata.get("persist", True)]


def field_names() -> frozenset[str]:
    return frozenset(f.name for f in fields(Settings))


def _clamp(value: float, low: float, high: float, default: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        return default
    return min(high, max(low, value))


def _clamp_int(value: int, low: int, high: int, default: int) -> int:
    return int(_clamp(value, low, high, default))


Observer = Callable[[Settings, Settings], None]


class SettingsModel:
    """The current `Settings`, replaced as a whole by `update`, with observers per field.

    Thread-safe: updates are serialised, and observers run on the updating thread, in the order they
    connected, after the new record is in place.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._value = (settings or Settings()).checked()
        self._lock = threading.RLock()
        self._observers: list[tuple[frozenset[str] | None, Observer]] = []

    @property
    def value(self) -> Settings:
        """The current settings (a frozen record; read it once per use for a consistent view)."""
        return self._value

    def update(self, **changes: Any) -> Settings:
        """Set fields (unknown names raise TypeError, numbers are clamped) and notify the observers concerned."""
        with self._lock:
            return self.replace(dataclasses.replace(self._value, **changes))

    def replace(self, settings: Settings) -> Settings:
        """Make `settings` the current record (checked), notifying observers of the fields that differ."""
        with self._lock:
            old, new = self._value, settings.checked()
            changed = {f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name)}
            if not changed:
                return old
            self._value = new
            observers = [callback for names, callback in self._observers if names is None or names & changed]
            for callback in observers:
                callback(old, new)
            return new

    def observe(self, callback: Observer, names: Iterable[str] | None = None) -> Callable[[], None]:
        """Call `callback(old, new)` when any of `names` (None: any field) changes; returns a disconnect function."""
        wanted = None if names is None else frozenset(names)
        if wanted is not None and not wanted <= field_names():
            raise ValueError(f"unknown settings: {sorted(wanted - field_names())}")
        entry = (wanted, callback)
        with self._lock:
            self._observers.append(entry)

        def disconnect() -> None:
            with self._lock:
                if entry in self._observers:
                    self._observers.remove(entry)

        return disconnect

    def connect_setattr(self, name: str, target: object, attribute: str) -> Callable[[], None]:
        """Keep `target.attribute` equal to the field `name` (napari's connect_setattr); set it now too."""
        setattr(target, attribute, getattr(self._value, name))
        return self.observe(lambda _old, new: setattr(target, attribute, getattr(new, name)), (name,))
