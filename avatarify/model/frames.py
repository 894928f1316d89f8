"""What every engine's predictor shares: frames to tensors and back, and the cache of prepared avatars."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Protocol, TypeVar

import numpy as np
import torch

Prepared = TypeVar("Prepared")


def image_to_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """An H x W x 3 RGB uint8 frame as a 1 x 3 x H x W float tensor in [0, 1] on `device`."""
    tensor = torch.from_numpy(np.ascontiguousarray(frame)).to(device)
    return tensor.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def tensor_to_image(prediction: torch.Tensor) -> np.ndarray:
    """A 1 x 3 x H x W tensor in [0, 1] as an H x W x 3 uint8 array (rounded to the nearest level)."""
    image = prediction[0].float().clamp_(0, 1).mul_(255.0).round_().byte()
    return image.permute(1, 2, 0).cpu().numpy()


class AvatarCache(Generic[Prepared]):
    """Prepared avatars by content key, so that switching back to one is instant; the least recently used beyond
    `size` are forgotten. Not locked: the predictor that owns it holds its own lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, key: str, prepare: Callable[[], Prepared]) -> Prepared:
        """The avatar stored under `key`, prepared now when it is not there."""
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = prepare()
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return item

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()


class HasImage(Protocol):
    image: np.ndarray


class HoldsAvatars:
    """The avatar side of a predictor: the current prepared avatar and the cache of earlier ones.

    The predictor sets `_lock`, `_avatars` (an `AvatarCache`) and `_avatar` (an item with an `image`, or None).
    """

    _lock: threading.RLock
    _avatars: AvatarCache
    _avatar: HasImage | None

    @property
    def avatar(self) -> np.ndarray | None:
        """The current avatar as the 256x256 RGB image the model sees."""
        with self._lock:
            return None if self._avatar is None else self._avatar.image

    @property
    def cached_avatars(self) -> int:
        """How many avatar encodings are kept for instant switching."""
        with self._lock:
            return len(self._avatars)
