"""The settings file: loading whatever is on disk without ever failing, and saving atomically.

A file that cannot be used whole (not UTF-8, not JSON, NaN or Infinity, absurd nesting, too big) gives the
defaults and is kept: before the first save replaces it, it is copied aside under a name no earlier backup
has. Single values of the wrong type are ignored, numbers out of range are brought into it.
"""
from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import paths
from .files import write_atomically
from .safejson import JsonInputError, loads_bounded
from .settings import MAX_TEXT_LENGTH, Settings, SettingsModel, persistent_fields

log = logging.getLogger(__name__)

# A real settings file is about 1 KB; anything near this is not one of ours.
MAX_FILE_BYTES = 256 * 1024
# A settings file is one flat object (crop_offset, the deepest value, is a list inside it).
MAX_DEPTH = 2
BACKUP_SUFFIX = ".bad"


class SettingsFileError(ValueError):
    """The settings file cannot be used as a whole; the text says why."""


def parse_settings(raw: bytes) -> tuple[Settings, list[str]]:
    """Settings from the bytes of a settings file, and the values that were ignored (one line each).

    Raises SettingsFileError when the file cannot be used at all.
    """
    try:
        data = loads_bounded(raw, max_bytes=MAX_FILE_BYTES, max_depth=MAX_DEPTH)
    except JsonInputError as exc:
        raise SettingsFileError(str(exc)) from None
    if not isinstance(data, dict):
        raise SettingsFileError("it does not hold a JSON object")
    values, ignored = {}, []
    for field in persistent_fields():
        if field.name in data:
            try:
                values[field.name] = _coerce(data[field.name], field.default)
            except TypeError as exc:
                ignored.append(f"{field.name}: {exc}")
    return Settings(**values).checked(), ignored


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
    elif isinstance(default, str):
        if isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH and "\0" not in value:
            return value
    raise TypeError(f"expected {type(default).__name__}, got {type(value).__name__}")


class SettingsFile:
    """Loads and saves the persistent part of `Settings` at one path (default: the user's config folder)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.settings_path()
        self._unusable = False

    def load(self) -> Settings:
        """The stored settings; the defaults for a missing or unusable file (logged, file left as it is)."""
        self._unusable = False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Settings()
        except OSError as exc:
            log.warning("Cannot read settings %s (%s); using the defaults.", self.path, exc.strerror or exc)
            self._unusable = True
            return Settings()
        try:
            settings, ignored = parse_settings(raw)
        except SettingsFileError as exc:
            log.warning("Settings file %s cannot be used (%s); using the defaults and keeping the file.", self.path, exc)
            self._unusable = True
            return Settings()
        for problem in ignored:
            log.warning("Ignoring a setting in %s: %s.", self.path, problem)
        return settings

    def save(self, settings: Settings) -> None:
        """Write the persistent settings atomically; an unusable old file is first kept under a fresh backup name."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._unusable and self.path.exists():
            backup = self._free_backup_path()
            shutil.copy2(self.path, backup)
            log.warning("Kept the unusable settings file as %s.", backup)
        self._unusable = False
        values = {f.name: getattr(settings, f.name) for f in persistent_fields()}
        text = json.dumps(values, indent=2, sort_keys=True, allow_nan=False) + "\n"
        write_atomically(self.path, text.encode("utf-8"))

    def _free_backup_path(self) -> Path:
        first = self.path.with_name(self.path.name + BACKUP_SUFFIX)
        candidate, number = first, 1
        while candidate.exists():
            number += 1
            candidate = first.with_name(f"{first.name}.{number}")
        return candidate

    def attach(self, model: SettingsModel, on_error: Callable[[str], None]) -> Callable[[], None]:
        """Save whenever a persistent field of `model` changes; failures go to `on_error` as one line."""

        def save(_old: Settings, new: Settings) -> None:
            try:
                self.save(new)
            except OSError as exc:
                on_error(f"Could not save the settings to {self.path}: {exc.strerror or exc}.")

        return model.observe(save, [f.name for f in persistent_fields()])

