"""Image loading and normalisation to the RGB uint8 arrays the rest of the app works with.

Pictures are checked from their header before any decoding (size, format, depth, transparency), decoded as small
as they can be (large JPEGs at 1/2, 1/4 or 1/8 scale; 8-bit colour straight from the decoder where the picture
has no transparency), and shrunk before any conversion of depth or transparency, so that loading any picture
that is accepted stays within a fixed memory budget.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .files import check_input_file, shown
from .imageheader import ImageHeader, ImageHeaderError, read_image_header

# Larger images are shrunk on load: avatars are used at 256x256, and decoding a 12000x12000
# photo at full size would otherwise cost ~430 MB per copy.
MAX_AVATAR_SIDE = 2048
# The largest picture accepted, as its header states it.
MAX_PIXELS = 100_000_000
# What reading one picture may hold at once: the file's bytes plus what its decoder allocates. A 100-megapixel
# picture fits (with transparency too, if its file is small); a 16-bit one with transparency only up to about
# 50 megapixels.
MAX_DECODE_BYTES = 800 * 2**20
# OpenCV's decoders hold two copies of the picture they return (decoded, then copied into place).
_DECODER_COPIES = 2
_REDUCED_JPEG = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# OpenCV applies EXIF rotation for most flags; pictures have always been loaded as stored.
_AS_STORED = cv2.IMREAD_IGNORE_ORIENTATION


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


@dataclass(frozen=True)
class _DecodePlan:
    """How to decode a picture: OpenCV flags, the scale the decoder reduces by, and the bytes it will allocate."""

    flags: int
    scale: int
    decoder_bytes: int


def _plan(header: ImageHeader, max_side: int) -> _DecodePlan:
    """The cheapest decode that still yields `max_side` pixels on the longer side (or the whole picture)."""
    pixels = header.pixels
    if header.format == "JPEG":
        scale = max((s for s in (1, 2, 4, 8) if max(header.width, header.height) // s >= max_side), default=1)
        # A progressive JPEG keeps every coefficient (2 bytes each) of the full-size picture while decoding.
        coefficients = pixels * header.channels * 2 if header.progressive else 0
        flags = _REDUCED_JPEG.get(scale, cv2.IMREAD_COLOR)
        return _DecodePlan(flags | _AS_STORED, scale, coefficients + _DECODER_COPIES * (pixels // scale**2) * 3)
    if header.alpha or header.bits > 16:
        # Transparency (and float samples) need the picture as stored: it is shrunk before any conversion.
        channels = max(header.channels, 4 if header.alpha else 1)  # grey with alpha arrives as BGRA
        return _DecodePlan(cv2.IMREAD_UNCHANGED, 1, _DECODER_COPIES * pixels * channels * -(-header.bits // 8))
    if header.channels == 1:
        return _DecodePlan(cv2.IMREAD_GRAYSCALE | _AS_STORED, 1, _DECODER_COPIES * pixels)
    # The decoder itself converts to 8-bit colour, row by row.
    return _DecodePlan(cv2.IMREAD_COLOR | _AS_STORED, 1, _DECODER_COPIES * pixels * 3)


def _check_header(path: Path, data: bytes, max_side: int = MAX_AVATAR_SIDE) -> tuple[ImageHeader, int]:
    """The picture's header and decode flags, after refusing (with one line) what is not one or is too large."""
    try:
        header = read_image_header(data)
    except ImageHeaderError as exc:
        raise InputError(f"{shown(path)} is not an image avatarify can read ({exc}); choose another picture.") from None
    if header.pixels > MAX_PIXELS:
        raise InputError(
            f"{shown(path)} is {header.width}x{header.height} pixels ({header.pixels / 1e6:.0f} megapixels); "
            f"pictures may have at most {MAX_PIXELS // 1_000_000} megapixels. Use a smaller copy."
        )
    plan = _plan(header, max_side)
    needed = len(data) + plan.decoder_bytes
    if needed > MAX_DECODE_BYTES:
        raise InputError(
            f"{shown(path)} ({header.width}x{header.height}, {header.channels}x{header.bits}-bit) would need "
            f"{needed / 2**20:.0f} MB to load, more than the {MAX_DECODE_BYTES // 2**20} MB allowed; save a "
            "smaller or 8-bit copy."
        )
    return header, plan.flags


def read_image(path: str | os.PathLike, max_side: int = MAX_AVATAR_SIDE) -> np.ndarray:
    """Read a picture file (JPEG, PNG, BMP, WebP, TIFF) as RGB uint8, any bit depth or channel count, shrunk to
    `max_side`; InputError (one line) for a missing, empty, unreadable or too large file."""
    path = Path(path)
    size = check_input_file(path, "Image").st_size
    if size == 0:
        raise InputError(f"Image {shown(path)} is an empty file; choose another picture.")
    if size > MAX_DECODE_BYTES:
        raise InputError(
            f"Image {shown(path)} is a {size / 2**20:.0f} MB file; pictures may be at most "
            f"{MAX_DECODE_BYTES // 2**20} MB. Use a smaller copy."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"Cannot read image {shown(path)} ({exc.strerror or exc}).") from None
    _, flags = _check_header(path, data, max_side)
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    del data
    if decoded is None:
        raise InputError(f"{shown(path)} is not an image OpenCV can read (damaged?); choose another file.")
    # Shrunk first, as stored (16-bit, float, with alpha): converting depth and transparency at full size would
    # cost several copies of the whole picture.
    decoded = shrink_to(decoded, max_side)
    if decoded.ndim == 3 and decoded.shape[2] == 4:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    elif decoded.ndim == 3 and decoded.shape[2] == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return to_rgb_uint8(decoded)
