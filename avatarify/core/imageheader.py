"""What a picture file says about itself, read from its header bytes alone, before any decoder allocates memory.

A 7 KB file can claim 30000x30000 pixels, and OpenCV's decoders allocate what the header claims (a progressive
JPEG even buffers all its coefficients at full size for a reduced decode). Reading the size here first lets the
caller refuse such files for the cost of a few byte comparisons. The formats are recognised by the same
signatures OpenCV uses to pick its decoder; anything else is refused rather than handed to a decoder whose header
was not checked.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

FORMATS = ("JPEG", "PNG", "BMP", "WebP", "TIFF")

# Start-of-frame markers (all JPEG coding processes); 0xC4, 0xC8 and 0xCC share the range but are other segments.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# Sequential Huffman coding (baseline and extended): what every JPEG encoder writes by default.
SEQUENTIAL_HUFFMAN = frozenset({0xC0, 0xC1})
# Markers without a length field.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_TIFF_CMYK = 5  # PhotometricInterpretation "separated"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels as stored (a palette expands to RGB)


class ImageHeaderError(ValueError):
    """Bytes that are not a picture in a known format, or whose header is damaged or cut short."""


@dataclass(frozen=True)
class ImageHeader:
    """A picture's format, size and sample layout as its header states them."""

    format: str
    width: int
    height: int
    channels: int  # samples per pixel, alpha included
    bits: int  # bits per sample
    alpha: bool
    sof: int = 0  # JPEG only: the start-of-frame marker (coding process)

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def progressive(self) -> bool:
        """A progressive JPEG: its decoder keeps every DCT coefficient of the whole picture in memory."""
        return self.sof in _PROGRESSIVE


def read_image_header(data: bytes) -> ImageHeader:
    """The header of a JPEG, PNG, BMP, WebP or TIFF file given as (at least its first) bytes."""
    view = bytes(data[:16])
    if view.startswith(b"\xff\xd8\xff"):
        return jpeg_header(data)
    if view.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if view.startswith(b"BM"):
        return _bmp(data)
    if view.startswith(b"RIFF") and view[8:12] == b"WEBP":
        return _webp(data)
    if view[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return _tiff(data)
    raise ImageHeaderError(f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file")


def jpeg_header(data: bytes) -> ImageHeader:
    """Walk a JPEG's marker segments up to its frame header (SOF) and read the size from there."""
    if not bytes(data[:3]) == b"\xff\xd8\xff":
        raise ImageHeaderError("not a JPEG (no start-of-image marker)")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ImageHeaderError(f"damaged JPEG (no marker at byte {pos})")
        marker = data[pos + 1]
        pos += 2
        if marker == 0xFF:  # fill byte before a marker
            pos -= 1
            continue
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):
            raise ImageHeaderError("damaged JPEG (image data before its frame header)")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise ImageHeaderError("damaged or cut-short JPEG header")
        if marker in _SOF:
            if length < 8:
                raise ImageHeaderError("damaged JPEG frame header")
            bits, height, width, components = struct.unpack_from(">BHHB", data, pos + 2)
            if width == 0 or height == 0:
                raise ImageHeaderError("JPEG without a stated size")
            return ImageHeader("JPEG", width, height, components, bits, alpha=False, sof=marker)
        pos += length
    raise ImageHeaderError("damaged or cut-short JPEG (no frame header)")


def _png(data: bytes) -> ImageHeader:
    if len(data) < 33 or bytes(data[12:16]) != b"IHDR":
        raise ImageHeaderError("damaged or cut-short PNG header")
    width, height, bits, colour = struct.unpack_from(">IIBB", data, 16)
    if width == 0 or height == 0 or colour not in _PNG_CHANNELS:
        raise ImageHeaderError("damaged PNG header")
    channels = _PNG_CHANNELS[colour]
    # A transparency chunk (before the image data) gives palette, grey and RGB pictures an alpha channel too.
    alpha = channels in (2, 4) or _png_has_chunk(data, b"tRNS")
    return ImageHeader("PNG", width, height, channels + (alpha and channels in (1, 3)), bits, alpha)


def _png_has_chunk(data: bytes, wanted: bytes) -> bool:
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == wanted:
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + length
    return False


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise ImageHeaderError("damaged or cut-short BMP header")
    (info_size,) = struct.unpack_from("<I", data, 14)
    if info_size == 12:
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
    elif 40 <= info_size and len(data) >= 30:
        width, height, _, bits = struct.unpack_from("<iiHH", data, 18)
    else:
        raise ImageHeaderError("damaged BMP header")
    height = abs(height)  # negative: rows stored top down
    if width <= 0 or height == 0 or bits not in (1, 4, 8, 16, 24, 32):
        raise ImageHeaderError("damaged BMP header")
    return ImageHeader("BMP", width, height, 4 if bits == 32 else 3, 8, alpha=bits == 32)


def _webp(data: bytes) -> ImageHeader:
    if len(data) < 30:
        raise ImageHeaderError("damaged or cut-short WebP header")
    chunk = bytes(data[12:16])
    if chunk == b"VP8X":
        flags = data[20]
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        alpha = bool(flags & 0x10)
    elif chunk == b"VP8L" and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        width, height, alpha = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF), bool(bits >> 28 & 1)
    elif chunk == b"VP8 " and bytes(data[23:26]) == b"\x9d\x01\x2a":
        width, height = (value & 0x3FFF for value in struct.unpack_from("<HH", data, 26))
        alpha = False
    else:
        raise ImageHeaderError("damaged WebP header")
    if width == 0 or height == 0:
        raise ImageHeaderError("damaged WebP header")
    return ImageHeader("WebP", width, height, 4 if alpha else 3, 8, alpha)


def _tiff(data: bytes) -> ImageHeader:
    """The first directory of a TIFF (or BigTIFF): the page OpenCV decodes."""
    order = "<" if data[0] == ord("I") else ">"
    big = data[2 + (order == ">")] == 0x2B
    try:
        offset = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
        count = struct.unpack_from(order + ("Q" if big else "H"), data, offset)[0]
        entry, first = (20, offset + 8) if big else (12, offset + 2)
        if count > (len(data) - first) // entry:
            raise ImageHeaderError("damaged or cut-short TIFF directory")
        tags = {}
        for index in range(count):
            tag, kind = struct.unpack_from(order + "HH", data, first + index * entry)
            value_at = first + index * entry + (12 if big else 8)
            tags[tag] = _tiff_value(data, order, kind, value_at, big)
    except (struct.error, OverflowError):  # an offset past the data, or past what any offset can be (BigTIFF)
        raise ImageHeaderError("damaged or cut-short TIFF header") from None
    width, height = tags.get(256, 0), tags.get(257, 0)
    if width <= 0 or height <= 0:
        raise ImageHeaderError("TIFF without a stated size")
    channels, bits = max(1, tags.get(277, 1)), max(1, tags.get(258, 1))
    # Extra samples are transparency; so is a fourth sample (second, for grey) unless the picture is CMYK, even
    # where the writer left out the tag that says so.
    alpha = 338 in tags or channels == 2 or (channels == 4 and tags.get(262) != _TIFF_CMYK)
    return ImageHeader("TIFF", width, height, channels, bits, alpha)


def _tiff_value(data: bytes, order: str, kind: int, at: int, big: bool) -> int:
    """The first value of a SHORT or LONG (or LONG8) entry, inline or (for several values) at its offset."""
    code = {3: "H", 4: "I", 16: "Q"}.get(kind)
    if code is None:
        return 0  # a type no size or layout tag uses
    (count,) = struct.unpack_from(order + ("Q" if big else "I"), data, at - (8 if big else 4))
    inline = 8 if big else 4
    if count * struct.calcsize(code) > inline:
        at = struct.unpack_from(order + ("Q" if big else "I"), data, at)[0]
    return struct.unpack_from(order + code, data, at)[0]
