"""The avatar library: pictures from the user's avatar folder and the ones shipped with the app."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import InputError
from ..core.files import write_atomically
from ..core.paths import user_avatar_dir
from ..core.images import read_image, to_rgb_uint8

log = logging.getLogger(__name__)

AVATAR_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
REPO_AVATAR_DIR = Path(__file__).resolve().parents[2] / "avatars"
MAX_NAME_LENGTH = 64


def safe_file_stem(name: str) -> str:
    """A file name stem made from a user-given avatar name (letters, digits, '-', '_')."""
    stem = re.sub(r"[^\w\-]+", "_", name.strip(), flags=re.UNICODE).strip("._")
    return stem[:MAX_NAME_LENGTH] or "avatar"


def _is_avatar_file(path: Path) -> bool:
    # Hidden files include the temporary ones `add` writes before renaming.
    return path.suffix.lower() in AVATAR_SUFFIXES and not path.name.startswith(".") and path.is_file()


class AvatarLibrary:
    """The avatar pictures found in `folders` (the first is the user's, where `add` saves), plus `files`.

    Paths are listed by folder, then by name; `reload` picks up pictures added or removed outside the app.
    """

    def __init__(self, folders: list[Path], files: list[Path] | None = None) -> None:
        self.folders = [Path(folder) for folder in folders]
        self.files = [Path(file) for file in files or []]
        self.paths: list[Path] = []
        self.reload()

    @classmethod
    def default(cls, choice: str | None = None) -> AvatarLibrary:
        """The user's avatar folder, then the app's own avatars/ folder; plus `choice` when it is a picture file."""
        picture = Path(choice).expanduser() if choice else None
        return cls([user_avatar_dir(), REPO_AVATAR_DIR], [picture] if picture and picture.is_file() else None)

    @property
    def user_folder(self) -> Path:
        return self.folders[0]

    @property
    def names(self) -> list[str]:
        return [path.stem for path in self.paths]

    def reload(self) -> None:
        """List the pictures again."""
        paths = [file for file in self.files if file.is_file()]
        for folder in self.folders:
            if folder.is_dir():
                found = filter(_is_avatar_file, folder.iterdir())
                paths.extend(sorted(found, key=lambda p: (p.stem.casefold(), p.name)))
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def _path(self, index: int) -> Path:
        if not 0 <= index < len(self.paths):
            raise InputError(f"There is no avatar number {index}; the library has {len(self.paths)}.")
        return self.paths[index]

    def image(self, index: int) -> np.ndarray:
        """The avatar picture as RGB uint8."""
        return read_image(self._path(index))

    def find(self, choice: str) -> int | None:
        """The index of the avatar `choice` names: a picture file in the library, or a name (file stem, any case)."""
        picture = Path(choice).expanduser()
        if picture.is_file():
            resolved = picture.resolve()
            return next((i for i, path in enumerate(self.paths) if path.resolve() == resolved), None)
        wanted = choice.casefold()
        return next(
            (i for i, path in enumerate(self.paths) if wanted in (path.stem.casefold(), path.name.casefold())), None
        )

    def add(self, image: np.ndarray, name: str) -> Path:
        """Save `image` as a PNG in the user folder under a new name; an existing file is never replaced."""
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(to_rgb_uint8(image), cv2.COLOR_RGB2BGR))
        if not ok:
            raise InputError("The picture could not be encoded as PNG.")
        folder = self.user_folder
        folder.mkdir(parents=True, exist_ok=True)
        stem = safe_file_stem(name)
        target = self._reserve(folder, stem)
        try:
            write_atomically(target, encoded.tobytes())
        except BaseException:
            target.unlink(missing_ok=True)  # the name reserved above
            raise
        log.info("Saved avatar %s", target)
        self.reload()
        return target

    @staticmethod
    def _reserve(folder: Path, stem: str) -> Path:
        """Create an empty file with a free name; exclusive creation cannot race another writer."""
        for number in range(1, 10_000):
            target = folder / (f"{stem}.png" if number == 1 else f"{stem}-{number}.png")
            if any(target.with_suffix(suffix).exists() for suffix in AVATAR_SUFFIXES if suffix != ".png"):
                continue
            try:
                with open(target, "xb"):
                    return target
            except FileExistsError:
                continue
        raise InputError(f"Too many avatars called {stem!r} in {folder}; choose another name.")

    def remove(self, index: int) -> None:
        """Delete an avatar the user added; the app's own pictures are never deleted."""
        path = self._path(index)
        if path.parent.resolve() != self.user_folder.resolve():
            raise InputError(f"{path.name} is not in your avatar folder {self.user_folder}; only those can be removed.")
        path.unlink(missing_ok=True)
        log.info("Removed avatar %s", path)
        self.reload()
