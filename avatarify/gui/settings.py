"""The desktop app's persistent settings: a dataclass stored as JSON in the user's config folder."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from ..core.files import write_atomically

log = logging.getLogger(__name__)

SETTINGS_FILE_NAME = "settings.json"


@dataclass
class AppSettings:
    """Everything the app remembers between runs. Empty strings mean "the default"."""

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
    model_device: str = "auto"
    checkpoint: str = ""  # empty: the usual lookup (see `avatarify weights`)
    avatar: str = ""  # name of the avatar driven last


def default_settings_path() -> Path:
    """settings.json in the per-user config folder (e.g. ~/.config/avatarify on Linux)."""
    return Path(platformdirs.user_config_dir("avatarify", appauthor=False)) / SETTINGS_FILE_NAME


def _coerce(value: Any, default: Any) -> Any:
    """`value` if it has the type of `default` (ints accepted for floats), else raise TypeError."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, type(default)):
        return value
    raise TypeError(f"expected {type(default).__name__}, got {type(value).__name__}")


class SettingsStore:
    """Loads and saves `AppSettings` at one path.

    Saving writes a temporary file beside the target and renames it over the target, so a crash
    never leaves a half-written file. A file that cannot be read gives the defaults; it is left as
    it is, and copied aside (settings.json.bad) before the first save replaces it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_settings_path()
        self._unreadable = False

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bad")

    def load(self) -> AppSettings:
        """The stored settings; defaults for a missing or unreadable file, and for unusable single values."""
        self._unreadable = False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AppSettings()
        except OSError as exc:
            log.warning("Cannot read settings %s (%s); using the defaults.", self.path, exc)
            self._unreadable = True
            return AppSettings()
        try:
            data = json.loads(raw.decode("utf-8"))  # not UTF-8: UnicodeDecodeError, a ValueError
            if not isinstance(data, dict):
                raise ValueError("the file does not hold a JSON object")
        except ValueError as exc:
            log.warning("Settings file %s is corrupt (%s); using the defaults and leaving the file as it is.", self.path, exc)
            self._unreadable = True
            return AppSettings()
        settings = AppSettings()
        for field in fields(AppSettings):
            if field.name not in data:
                continue
            default = getattr(settings, field.name)
            try:
                setattr(settings, field.name, _coerce(data[field.name], default))
            except TypeError as exc:
                log.warning("Ignoring setting %r in %s: %s.", field.name, self.path, exc)
        return settings

    def save(self, settings: AppSettings) -> None:
        """Write the settings atomically (temporary file + rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._unreadable and self.path.exists():
            shutil.copy2(self.path, self.backup_path)
            log.warning("Kept the unreadable settings file as %s.", self.backup_path)
        self._unreadable = False
        text = json.dumps(dataclasses.asdict(settings), indent=2, sort_keys=True) + "\n"
        write_atomically(self.path, text.encode("utf-8"))
