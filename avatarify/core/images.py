"""Image loading and normalisation to the RGB uint8 arrays the rest of the app works with."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import InputError

# Larger images are shrunk on load: avatars are used at 256x256, and decoding a 12000x12000
# photo at full size would otherwise cost ~430 MB per copy.
MAX_AVATAR_SIDE = 2048


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any grayscale / RGB / RGBA array, 8- or 16-bit or float in [0, 1], as H x W x 3 uint8 RGB."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or min(array.shape[:2]) < 1:
        raise InputError(f"Unsupported image shape {array.shape}; expected a grayscale, RGB or RGBA image.")
    if array.dtype == np.uint16:
        array = (array / 257.0).round().astype(np.uint8)
    elif array.dtype.kind == "f":
        array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.shape[2] == 4:
        # Transparent areas become white, the usual backdrop of a cut-out portrait.
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        blended = array[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return blended.round().astype(np.uint8)
    return np.ascontiguousarray(array)


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area interpolation) so that the longer side is at most `max_side`."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def read_image(path: str | Path, max_side: int = MAX_AVATAR_SIDE) -> np.ndarray:
    """Read an image file as RGB uint8 (any bit depth or channel count), shrunk to `max_side`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Image {path} does not exist.")
    if path.stat().st_size == 0:
        raise InputError(f"Image {path} is an empty file; choose another picture.")
    data = np.fromfile(str(path), dtype=np.uint8)
    # IMREAD_UNCHANGED keeps 16-bit depth and alpha, which to_rgb_uint8 then resolves.
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise InputError(f"{path} is not an image OpenCV can read (JPEG, PNG, BMP, WebP, TIFF); choose another file.")
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    elif decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return shrink_to(to_rgb_uint8(decoded), max_side)
