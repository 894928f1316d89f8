"""Which avatar of the library is driven: tracked by its file, so adding, removing or reloading pictures keeps it."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..pipeline.avatars import AvatarLibrary
from ..pipeline.state import Avatar

log = logging.getLogger(__name__)


class AvatarChoice:
    """The library and the avatar being driven; `on_change` gets each newly chosen avatar (None: none left).

    Reading a picture that is gone or damaged raises `InputError` with the reason; the choice stays as it was.
    """

    def __init__(self, library: AvatarLibrary, on_change: Callable[[Avatar | None], None]) -> None:
        self.library = library
        self._on_change = on_change
        self.index: int | None = None
        self.path: Path | None = None

    @property
    def name(self) -> str | None:
        return None if self.index is None else self.library.names[self.index]

    def select(self, index: int) -> Avatar:
        """Drive avatar number `index` (0-based)."""
        image = self.library.image(index)  # InputError for a missing index or an unreadable picture
        self.index, self.path = index, self.library.paths[index]
        avatar = Avatar.from_picture(image, self.library.names[index])
        self._on_change(avatar)
        return avatar

    def select_named(self, choice: str) -> bool:
        """Drive the avatar a name or picture file names; False when the library has none such."""
        index = self.library.find(choice)
        if index is None:
            return False
        self.select(index)
        return True

    def step(self, delta: int) -> None:
        """Drive the next (+1) or previous (-1) avatar, wrapping around."""
        count = len(self.library)
        if not count:
            return
        if self.index is None:
            self.select(0 if delta > 0 else count - 1)
        else:
            self.select((self.index + delta) % count)

    def reload(self) -> None:
        """List the folders again; keep driving the same file, else the one that took its place (else the last)."""
        index, current = self.index, self.path
        self.library.reload()
        paths = self.library.paths
        if current is not None and current in paths:
            self.index = paths.index(current)
        elif paths:
            self.select(min(index or 0, len(paths) - 1))
        else:
            self.index = self.path = None
            self._on_change(None)
