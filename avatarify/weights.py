"""Where model weights live and how they are found."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import CheckpointError

CHECKPOINT_NAME = "vox-adv-cpk.pth.tar"
CHECKPOINT_MD5 = "8a45a24037871c045fbb8a6a8aa95ebc"
CHECKPOINT_SIZE = 228_000_000  # approximate, for messages
CHECKPOINT_ENV = "AVATARIFY_CHECKPOINT"
# The other published VoxCeleb checkpoint; same architecture, accepted when found.
ALTERNATIVE_NAMES = ("vox-cpk.pth.tar",)
REPO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def user_weights_dir() -> Path:
    """The per-user folder `avatarify weights download` writes to."""
    return Path(platformdirs.user_data_dir("avatarify", appauthor=False)) / "weights"


def candidate_paths() -> list[Path]:
    """Every place looked at, in order, after an explicit path and the environment variable."""
    names = (CHECKPOINT_NAME, *ALTERNATIVE_NAMES)
    return [folder / name for folder in (user_weights_dir(), REPO_WEIGHTS_DIR) for name in names]


def missing_weights_message() -> str:
    return (
        f"No model weights found. Run `avatarify weights download`, or put {CHECKPOINT_NAME} in "
        f"{user_weights_dir()} (or pass --checkpoint PATH, or set {CHECKPOINT_ENV})."
    )


def find_checkpoint(explicit: str | os.PathLike | None = None) -> Path:
    """The checkpoint to use: explicit path, then $AVATARIFY_CHECKPOINT, the user data folder, the repo's weights/."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CheckpointError(f"Checkpoint {path} does not exist. {missing_weights_message()}")
        return path
    from_env = os.environ.get(CHECKPOINT_ENV)
    if from_env:
        path = Path(from_env).expanduser()
        if not path.is_file():
            raise CheckpointError(f"{CHECKPOINT_ENV} points to {path}, which does not exist.")
        return path
    for path in candidate_paths():
        if path.is_file():
            return path
    raise CheckpointError(missing_weights_message())
