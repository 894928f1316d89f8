"""Picture files made byte by byte: headers that claim any size, and large real pictures written a row at a time
(so that making a 100-megapixel test picture never holds it in memory)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png(path: Path, width: int, height: int, channels: int = 3, bits: int = 8, value: int = 200,
              rows: int | None = None) -> Path:
    """A PNG of `width` x `height` where every sample is `value`; only `rows` rows of pixel data when given (the
    header still claims the full size)."""
    header = struct.pack(">IIBBBBB", width, height, bits, _PNG_COLOUR[channels], 0, 0, 0)
    row = b"\0" + value.to_bytes(bits // 8, "big") * (channels * width)
    compressor = zlib.compressobj(1)
    data = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    path.write_bytes(PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def jpeg(image: np.ndarray, progressive: bool = False, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert ok
    return data.tobytes()


def patch_jpeg_frame(data: bytes, width: int | None = None, height: int | None = None, marker: int | None = None,
                     bits: int | None = None, components: int | None = None) -> bytes:
    """The JPEG with its start-of-frame segment rewritten; the coded pixel data stays as it was."""
    data = bytearray(data)
    at = next(found for sof in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2") if (found := data.find(sof)) > 0)
    old = struct.unpack_from(">BHHB", data, at + 4)
    new = [old_value if value is None else value for value, old_value in zip((bits, height, width, components), old)]
    struct.pack_into(">BHHB", data, at + 4, *new)
    if marker is not None:
        data[at + 1] = marker
    return bytes(data)


def small_progressive_jpeg_claiming(width: int, height: int) -> bytes:
    """A few KB of progressive JPEG whose header claims `width` x `height`."""
    small = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return patch_jpeg_frame(jpeg(small, progressive=True), width, height)


def bmp_header(width: int, height: int, bits: int = 24) -> bytes:
    """A BMP file header and info header claiming `width` x `height`, and a little pixel data."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + info + bytes(4096)


def tiff_header(width: int, height: int, samples: int = 3, bits: int = 8) -> bytes:
    """A little-endian TIFF whose first directory claims `width` x `height`, with a little pixel data."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, bits), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 200), (277, 3, 1, samples), (278, 4, 1, height), (279, 4, 1, 4096)]  # fmt: skip
    directory = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        directory += struct.pack("<HHI", tag, kind, count) + struct.pack("<I" if kind == 4 else "<HH", value, *([0] if kind == 3 else []))
    directory += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + directory + bytes(200 + 4096 - 8 - len(directory))


def webp_header(width: int, height: int, alpha: bool = True) -> bytes:
    """An extended-format WebP (VP8X) whose canvas claims `width` x `height`."""
    chunk = struct.pack("<B3x", 0x10 if alpha else 0) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(chunk)) + chunk + bytes(1000)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_file(entries: list[tuple[int, int, list[int]]], order: str = "<", big: bool = False) -> bytes:
    """A TIFF (a BigTIFF when `big`) whose first directory holds `entries` of (tag, type, values); types 3 (SHORT),
    4 (LONG), 16 (LONG8) or 5 (RATIONAL, values as numerator, denominator). Values too long for their entry go
    after the directory, as writers put them."""
    codes = {3: "H", 4: "I", 16: "Q", 5: "II"}
    offset, inline = ("Q", 8) if big else ("I", 4)
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42)
    head += struct.pack(order + "HHQ", 8, 0, 16) if big else struct.pack(order + "I", 8)
    directory = struct.pack(order + ("Q" if big else "H"), len(entries))
    after = len(head) + len(directory) + len(entries) * (4 + 2 * inline) + inline
    values_data = b""
    for tag, kind, values in entries:
        step = len(codes[kind])
        raw = b"".join(struct.pack(order + codes[kind], *values[i : i + step]) for i in range(0, len(values), step))
        if len(raw) > inline:
            raw, values_data = struct.pack(order + offset, after + len(values_data)), values_data + raw
        directory += struct.pack(order + "HH" + offset, tag, kind, len(values) // step) + raw.ljust(inline, b"\0")
    return head + directory + bytes(inline) + values_data
