"""The avatar library: pictures from the user's avatar folder and the ones shipped with the app, in an order
that stays put.

The gallery's order and the names users gave their avatars are kept in a small file in the user's avatar
folder, so that avatar 3 stays avatar 3 (the 1-9 hotkeys depend on it): pictures found later join at the end,
and the user may reorder them. File names are made safe; the name shown is the one the user typed.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import InputError
from ..core.files import is_regular_file, write_atomically
from ..core.images import read_image, to_rgb_uint8
from ..core.paths import user_avatar_dir

log = logging.getLogger(__name__)

AVATAR_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
REPO_AVATAR_DIR = Path(__file__).resolve().parents[2] / "avatars"
MAX_NAME_LENGTH = 64
INDEX_NAME = ".gallery.json"
MAX_INDEX_BYTES = 1 << 20


def safe_file_stem(name: str) -> str:
    """A file name stem made from a user-given avatar name (letters, digits, '-', '_')."""
    stem = re.sub(r"[^\w\-]+", "_", name.strip(), flags=re.UNICODE).strip("._")
    return stem[:MAX_NAME_LENGTH] or "avatar"


def display_name(name: str) -> str:
    """A user-given name as shown: one line, without control characters, not too long."""
    return " ".join("".join(ch for ch in name if ch.isprintable()).split())[:MAX_NAME_LENGTH]


def _is_avatar_file(path: Path) -> bool:
    # Hidden files include the temporary ones `add` writes before renaming, and the gallery index.
    return path.suffix.lower() in AVATAR_SUFFIXES and not path.name.startswith(".") and path.is_file()


class AvatarLibrary:
    """The avatar pictures found in `folders` (the first is the user's, where `add` saves), plus `files`.

    `paths` keeps the remembered order; `reload` picks up pictures added or removed outside the app.
    """

    def __init__(self, folders: list[Path], files: list[Path] | None = None) -> None:
        self.folders = [Path(folder) for folder in folders]
        self.files = [Path(file) for file in files or []]
        self.paths: list[Path] = []
        self._names: dict[str, str] = {}
        self.reload()

    @classmethod
    def default(cls, choice: str | None = None) -> AvatarLibrary:
        """The user's avatar folder, then the app's own avatars/ folder; plus `choice` when it is a picture file."""
        picture = Path(choice).expanduser() if choice else None
        return cls([user_avatar_dir(), REPO_AVATAR_DIR], [picture] if picture and is_regular_file(picture) else None)

    @property
    def user_folder(self) -> Path:
        return self.folders[0]

    @property
    def index_path(self) -> Path:
        return self.user_folder / INDEX_NAME

    @property
    def names(self) -> list[str]:
        """The names shown, in gallery order."""
        return [self._names.get(str(path), path.stem) for path in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def reload(self) -> None:
        """List the pictures again: known ones in their remembered order, new ones at the end."""
        found = []
        for folder in self.folders:
            if folder.is_dir():
                found.extend(sorted(filter(_is_avatar_file, folder.iterdir()), key=lambda p: (p.stem.casefold(), p.name)))
        order, self._names = self._read_index()
        known = {path: position for position, path in enumerate(order)}
        # sorted() is stable: files not in the remembered order keep their listing order, after the known ones.
        ranked = sorted(found, key=lambda path: known.get(str(path), len(known)))
        self.paths = [file for file in self.files if is_regular_file(file)] + ranked
        if [str(path) for path in ranked] != order:
            self._save_index()

    def _read_index(self) -> tuple[list[str], dict[str, str]]:
        """The remembered order and names; an unreadable index is ignored (the listing order is used)."""
        try:
            raw = self.index_path.read_bytes()
            if len(raw) > MAX_INDEX_BYTES:
                raise ValueError("too big")
            data = json.loads(raw.decode("utf-8"))
            order = [str(entry) for entry in data["order"] if isinstance(entry, str)]
            names = {str(k): display_name(str(v)) for k, v in data["names"].items() if isinstance(v, str)}
            return order, names
        except FileNotFoundError:
            return [], {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            log.warning("Ignoring the gallery order in %s (%s).", self.index_path, exc)
            return [], {}

    def _save_index(self) -> None:
        order = [str(path) for path in self.paths if path not in self.files]
        if not order and not self.index_path.exists():
            return  # nothing worth remembering yet
        names = {key: value for key, value in self._names.items() if key in order}
        try:
            self.user_folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.index_path, json.dumps({"order": order, "names": names}, indent=1).encode())
        except OSError as exc:
            log.warning("Could not save the gallery order in %s (%s).", self.index_path, exc.strerror or exc)

    def _path(self, index: int) -> Path:
        if not 0 <= index < len(self.paths):
            raise InputError(f"There is no avatar number {index}; the library has {len(self.paths)}.")
        return self.paths[index]

    def image(self, index: int) -> np.ndarray:
        """The avatar picture as RGB uint8."""
        return read_image(self._path(index))

    def removable(self, index: int) -> bool:
        """Whether avatar `index` is one the user added (the app's own pictures are never deleted)."""
        return self._path(index).parent.resolve() == self.user_folder.resolve()

    def find(self, choice: str) -> int | None:
        """The index of the avatar `choice` names: a picture file in the library, or a name (any case)."""
        picture = Path(choice).expanduser()
        if is_regular_file(picture):
            resolved = picture.resolve()
            return next((i for i, path in enumerate(self.paths) if path.resolve() == resolved), None)
        wanted = choice.casefold()
        return next(
            (
                i
                for i, (path, name) in enumerate(zip(self.paths, self.names))
                if wanted in (name.casefold(), path.stem.casefold(), path.name.casefold())
            ),
            None,
        )

    def add(self, image: np.ndarray, name: str) -> Path:
        """Save `image` as a PNG in the user folder under a new file (never replacing one), at the gallery's end."""
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(to_rgb_uint8(image), cv2.COLOR_RGB2BGR))
        if not ok:
            raise InputError("The picture could not be encoded as PNG.")
        folder = self.user_folder
        folder.mkdir(parents=True, exist_ok=True)
        target = self._reserve(folder, safe_file_stem(name))
        try:
            write_atomically(target, encoded.tobytes())
        except BaseException:
            target.unlink(missing_ok=True)  # the name reserved above
            raise
        log.info("Saved avatar %s", target)
        if display_name(name):
            self._names[str(target)] = display_name(name)
        self.paths.append(target)
        self._save_index()
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

    def move(self, index: int, to: int) -> None:
        """Put avatar `index` at position `to` (the others shift); the order is remembered."""
        path = self._path(index)
        self.paths.pop(index)
        self.paths.insert(max(0, min(to, len(self.paths))), path)
        self._save_index()

    def remove(self, index: int) -> None:
        """Delete an avatar the user added; the app's own pictures are never deleted."""
        path = self._path(index)
        if not self.removable(index):
            raise InputError(f"{path.name} is not in your avatar folder {self.user_folder}; only those can be removed.")
        path.unlink(missing_ok=True)
        log.info("Removed avatar %s", path)
        self.paths.pop(index)
        self._names.pop(str(path), None)
        self._save_index()
