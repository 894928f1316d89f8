"""The avatars a worker has received, by content hash: checked on arrival, the least recently used forgotten."""
from __future__ import annotations

import logging
from collections import OrderedDict

import numpy as np

from ..core.frame import content_key
from .protocol import Message, ProtocolError

log = logging.getLogger(__name__)

AVATAR_CACHE_SIZE = 64


class AvatarStore:
    """Avatar images by the hash clients name them with; at most `size`, the least recently used forgotten.

    Not locked: one thread owns it (the local worker's model thread, or the socket thread of a Ray front end).
    """

    def __init__(self, size: int = AVATAR_CACHE_SIZE) -> None:
        self.size = size
        self.uploads = 0
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()

    def receive(self, message: Message) -> str:
        """Keep the image an `avatar` message uploads (a query carries none); its hash. ProtocolError when the image
        is not the one its hash names."""
        key = message.header["hash"]
        if message.payload is not None:
            image = message.frame()
            if content_key(image) != key:
                raise ProtocolError("avatar image does not match its hash", "avatar hash")
            self._images[key] = image
            self._images.move_to_end(key)
            self.uploads += 1
            log.info("Received avatar %s (%d bytes)", key[:12], len(message.payload))
            while len(self._images) > self.size:
                self._images.popitem(last=False)
        return key

    def get(self, key: str) -> np.ndarray | None:
        """The image of `key`, or None when it never came or was forgotten."""
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def __len__(self) -> int:
        return len(self._images)
