"""Where avatarify keeps a user's files: one place to look them up, per operating system."""
from __future__ import annotations

from pathlib import Path

import platformdirs

APP_NAME = "avatarify"


def user_data_dir() -> Path:
    """Avatars and weights: ~/.local/share/avatarify on Linux (platform equivalents elsewhere)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def user_config_dir() -> Path:
    """Settings and worker keys: ~/.config/avatarify on Linux (platform equivalents elsewhere)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_avatar_dir() -> Path:
    """The folder where avatars a user adds are saved."""
    return user_data_dir() / "avatars"


def user_weights_dir() -> Path:
    """The folder `avatarify weights download` writes to."""
    return user_data_dir() / "weights"


def settings_path() -> Path:
    """The app's settings file."""
    return user_config_dir() / "settings.json"


def keys_dir() -> Path:
    """The folder `avatarify worker keys` writes to."""
    return user_config_dir() / "worker-keys"
