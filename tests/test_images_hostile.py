"""Avatars of any size: checked from the header before decoding, refused beyond the documented limits with one
line, and loaded within a fixed memory budget. Peak memory is measured in a child process under a hard cap."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from avatarify.core.errors import InputError
from avatarify.core.imageheader import ImageHeader, ImageHeaderError, jpeg_header, read_image_header
from avatarify.core.images import MAX_DECODE_BYTES, read_image, to_rgb_uint8
from bounded import GiB, run_bounded
from forged import (
    PNG_SIGNATURE,
    bmp_header,
    small_progressive_jpeg_claiming,
    tiff_file,
    tiff_header,
    webp_header,
    write_png,
)

MiB = 2**20
# Peak memory of a whole process (interpreter, numpy and OpenCV included) reading any accepted avatar.
PEAK_LIMIT = 1 * GiB


def read_in_child(path, address_space: int = 4 * GiB):
    """read_image(path) in a capped child process: (outcome, peak RSS, seconds)."""
    outcome = run_bounded(
        f"""
        from avatarify.core.errors import InputError
        from avatarify.core.images import read_image
        try:
            image = read_image({str(path)!r})
            report(outcome="read", shape=list(image.shape), mean=float(image.mean()))
        except InputError as exc:
            report(outcome="refused", message=str(exc))
        """,
        address_space=address_space,
    )
    assert outcome.values, f"the child failed:\n{outcome.stderr[-3000:]}"
    return outcome


def refused_files(tmp_path) -> dict[str, object]:
    """Files whose header claims more than an avatar may be; little or no pixel data behind it."""
    files = {
        "20000x20000 8-bit PNG": write_png(tmp_path / "a.png", 20000, 20000, rows=2),
        "20000x20000 16-bit PNG": write_png(tmp_path / "b.png", 20000, 20000, bits=16, rows=2),
        "30000x30000 RGBA PNG": write_png(tmp_path / "c.png", 30000, 30000, channels=4, rows=2),
        "7 KB progressive JPEG claiming 30000x30000": tmp_path / "d.jpg",
        "BMP claiming 30000x30000": tmp_path / "e.bmp",
        "BMP claiming 60000x60000 top-down": tmp_path / "f.bmp",
        "TIFF claiming 30000x30000": tmp_path / "g.tif",
        "WebP claiming 16384x16384 with alpha": tmp_path / "h.webp",
        "9500x9500 16-bit RGBA PNG (over the decode budget)": write_png(tmp_path / "i.png", 9500, 9500, 4, 16, rows=2),
    }
    files["7 KB progressive JPEG claiming 30000x30000"].write_bytes(small_progressive_jpeg_claiming(30000, 30000))
    files["BMP claiming 30000x30000"].write_bytes(bmp_header(30000, 30000))
    files["BMP claiming 60000x60000 top-down"].write_bytes(bmp_header(60000, -60000, bits=32))
    files["TIFF claiming 30000x30000"].write_bytes(tiff_header(30000, 30000))
    files["WebP claiming 16384x16384 with alpha"].write_bytes(webp_header(16384, 16384))
    return files


def test_oversized_pictures_are_refused_from_the_header_in_one_line(tmp_path):
    for name, path in refused_files(tmp_path).items():
        with pytest.raises(InputError) as info:
            read_image(path)
        message = str(info.value)
        assert "\n" not in message and ("megapixels" in message or "MB" in message), (name, message)


@pytest.mark.slow
def test_refusing_a_forged_picture_costs_neither_memory_nor_time(tmp_path):
    for name in ("7 KB progressive JPEG claiming 30000x30000", "30000x30000 RGBA PNG", "BMP claiming 30000x30000"):
        outcome = read_in_child(refused_files(tmp_path)[name])
        assert outcome.values["outcome"] == "refused" and "megapixels" in outcome.values["message"], outcome.values
        assert outcome.peak_rss < 300 * MiB and outcome.seconds < 10, (name, outcome.peak_rss, outcome.seconds)


@pytest.mark.slow
@pytest.mark.parametrize(
    "width, height, channels, bits",
    [(10000, 10000, 3, 8), (10000, 10000, 3, 16), (10000, 10000, 4, 8), (7000, 7000, 4, 16), (10000, 10000, 1, 16)],
    ids=["100 MP 8-bit", "100 MP 16-bit", "100 MP RGBA", "49 MP 16-bit RGBA", "100 MP 16-bit grey"],
)
def test_the_largest_accepted_pictures_load_within_a_gigabyte(width, height, channels, bits, tmp_path):
    path = write_png(tmp_path / "big.png", width, height, channels, bits, value=200 * (257 if bits == 16 else 1))
    outcome = read_in_child(path)
    assert outcome.values["outcome"] == "read", outcome.values
    assert max(outcome.values["shape"][:2]) == 2048 and outcome.values["shape"][2] == 3
    assert outcome.peak_rss < PEAK_LIMIT, f"peak {outcome.peak_rss / MiB:.0f} MB"


@pytest.mark.slow
def test_a_large_progressive_jpeg_is_decoded_reduced_within_a_gigabyte(tmp_path):
    path = tmp_path / "big.jpg"
    made = run_bounded(
        f"""
        import cv2, numpy as np
        ramp = (np.arange(10000) // 40 % 256).astype(np.uint8)
        image = np.empty((10000, 10000, 3), np.uint8)
        image[:, :, 0], image[:, :, 1], image[:, :, 2] = ramp[None, :], ramp[:, None], 128
        # Full-resolution colour (4:4:4): the most coefficients a 100-megapixel JPEG can hold.
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 80,
                                                cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
        open({str(path)!r}, "wb").write(data.tobytes())
        """,
        address_space=8 * GiB,
    )
    assert path.stat().st_size > 0, made.stderr[-2000:]
    outcome = read_in_child(path)
    assert outcome.values["outcome"] == "read" and outcome.values["shape"] == [2048, 2048, 3], outcome.values
    assert outcome.peak_rss < PEAK_LIMIT, f"peak {outcome.peak_rss / MiB:.0f} MB"


def test_files_beyond_the_size_limit_are_refused_unread(tmp_path):
    path = tmp_path / "huge.png"
    with open(path, "wb") as stream:  # sparse: no disk space used
        stream.write(b"\x89PNG\r\n\x1a\n")
        stream.truncate(MAX_DECODE_BYTES + 1)
    with pytest.raises(InputError, match="MB file"):
        read_image(path)


def full_size_reference(path) -> np.ndarray:
    """What the picture is, decoded at full size as stored and converted the simple way."""
    decoded = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if decoded.ndim == 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return to_rgb_uint8(decoded)


@pytest.mark.parametrize(
    "name, make, params",
    [
        ("grey.png", lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), []),
        ("grey-alpha-16.png", lambda bgr: np.dstack([bgr, (bgr[:, :, 0] > 90) * 255]).astype(np.uint16) * 257, []),
        ("rgba.png", lambda bgr: np.dstack([bgr, (bgr[:, :, 1] > 90) * 255]).astype(np.uint8), []),
        ("rgb-16.png", lambda bgr: bgr.astype(np.uint16) * 257, []),
        ("rgba.bmp", lambda bgr: np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]), []),
        ("alpha.webp", lambda bgr: np.dstack([bgr, (bgr[:, :, 2] > 90) * 255]).astype(np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101]),
        ("rgba.tif", lambda bgr: np.dstack([bgr, (bgr[:, :, 0] > 90) * 255]).astype(np.uint8), []),
        ("float.tif", lambda bgr: bgr.astype(np.float32) / 255, []),
        ("grey.jpg", lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), []),
        ("progressive.jpg", lambda bgr: bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    ],
)
def test_every_kind_of_picture_still_reads_as_before(name, make, params, tmp_path):
    y, x = np.mgrid[0:90, 0:120]
    bgr = np.dstack([x * 2, y * 2, (x + y)]).astype(np.uint8)
    path = tmp_path / name
    assert cv2.imwrite(str(path), make(bgr), params)
    np.testing.assert_array_equal(read_image(path), full_size_reference(path))


def _gradient(channels: int = 3, dtype=np.uint8) -> np.ndarray:
    y, x = np.mgrid[0:30, 0:40]
    image = np.dstack([x * 2, y * 2, x + y, 255 - x][:channels]).astype(dtype)
    return image[:, :, 0] if channels == 1 else image


@pytest.mark.parametrize(
    "extension, channels, dtype, params, expected",
    [
        (".jpg", 3, np.uint8, [], ImageHeader("JPEG", 40, 30, 3, 8, False, sof=0xC0)),
        (".jpg", 1, np.uint8, [], ImageHeader("JPEG", 40, 30, 1, 8, False, sof=0xC0)),
        (".jpg", 3, np.uint8, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], ImageHeader("JPEG", 40, 30, 3, 8, False, sof=0xC2)),
        (".png", 1, np.uint8, [], ImageHeader("PNG", 40, 30, 1, 8, False)),
        (".png", 4, np.uint8, [], ImageHeader("PNG", 40, 30, 4, 8, True)),
        (".png", 3, np.uint16, [], ImageHeader("PNG", 40, 30, 3, 16, False)),
        (".bmp", 3, np.uint8, [], ImageHeader("BMP", 40, 30, 3, 8, False)),
        (".bmp", 4, np.uint8, [], ImageHeader("BMP", 40, 30, 4, 8, True)),
        (".webp", 3, np.uint8, [cv2.IMWRITE_WEBP_QUALITY, 80], ImageHeader("WebP", 40, 30, 3, 8, False)),
        (".webp", 3, np.uint8, [cv2.IMWRITE_WEBP_QUALITY, 101], ImageHeader("WebP", 40, 30, 3, 8, False)),
        (".webp", 4, np.uint8, [cv2.IMWRITE_WEBP_QUALITY, 101], ImageHeader("WebP", 40, 30, 4, 8, True)),
        (".tif", 3, np.uint8, [], ImageHeader("TIFF", 40, 30, 3, 8, False)),
        (".tif", 4, np.uint8, [], ImageHeader("TIFF", 40, 30, 4, 8, True)),
        (".tif", 1, np.uint16, [], ImageHeader("TIFF", 40, 30, 1, 16, False)),
    ],
)
def test_headers_of_pictures_opencv_writes(extension, channels, dtype, params, expected):
    ok, data = cv2.imencode(extension, _gradient(channels, dtype), params)
    header = read_image_header(data.tobytes())
    assert header == expected and header.pixels == 1200
    assert header.progressive == (expected.sof == 0xC2)


def _header_error(data: bytes) -> str:
    with pytest.raises(ImageHeaderError) as info:
        read_image_header(data)
    return str(info.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a" + bytes(40), b"RIFF\0\0\0\0WAVEfmt " + bytes(40), b"\xff\xd8" + bytes(40), b"II*\x01" + bytes(40),
     b"MM*\0" + bytes(40), b"\x89PNG\r\n\x1a" + bytes(40)],  # fmt: skip
)
def test_unknown_formats_are_named_in_the_refusal(data):
    assert _header_error(data) == "not a JPEG, PNG, BMP, WebP or TIFF file"


# --- JPEG: marker segments up to the frame header.
SOI = b"\xff\xd8"


def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def _frame(marker: int = 0xC0, width: int = 0x0567, height: int = 0x1234, bits: int = 12, components: int = 4) -> bytes:
    return _segment(marker, struct.pack(">BHHB", bits, height, width, components))


@pytest.mark.parametrize("marker", range(0xC0, 0xD0))
def test_jpeg_frame_header_of_every_coding_process(marker):
    app = _segment(0xE0, b"JFIF\0" + bytes(9))
    if marker in (0xC4, 0xC8, 0xCC):  # Huffman tables, the JPEG extension, arithmetic conditioning: other segments
        assert _header_error(SOI + app + _frame(marker)) == "damaged or cut-short JPEG (no frame header)"
        assert read_image_header(SOI + app + _frame(marker) + _frame(0xC0, 3, 2, 8, 1)) == ImageHeader(
            "JPEG", 3, 2, 1, 8, alpha=False, sof=0xC0
        )
        return
    header = read_image_header(SOI + app + _frame(marker))
    assert header == ImageHeader("JPEG", 0x0567, 0x1234, 4, 12, alpha=False, sof=marker)
    assert header.progressive == (marker in (0xC2, 0xC6, 0xCA, 0xCE))


def test_jpeg_header_skips_fill_bytes_standalone_markers_and_empty_segments():
    data = SOI + b"\xff\xff\xff\x01\xff\xd0\xff\xd7" + _segment(0xFE, b"") + b"\xff" + _frame(0xC1, 640, 480, 8, 3)
    assert read_image_header(data) == ImageHeader("JPEG", 640, 480, 3, 8, alpha=False, sof=0xC1)


def test_jpeg_header_reads_a_frame_header_that_ends_the_data():
    # The shortest frame header there is, and nothing after it: the header alone is enough.
    assert jpeg_header(SOI + _segment(0xC0, struct.pack(">BHHB", 8, 2, 3, 1))) == ImageHeader("JPEG", 3, 2, 1, 8, False, sof=0xC0)


@pytest.mark.parametrize(
    "data, message",
    [(SOI + _segment(0xE0, b"\0\0") + b"\0\0\xff\xc0" + bytes(20), "damaged JPEG (no marker at byte 8)"),
     (SOI + b"\xff\xd9\0\0", "damaged JPEG (image data before its frame header)"),
     (SOI + _segment(0xE0, b"") + b"\xff\xda\0\x0c" + bytes(20), "damaged JPEG (image data before its frame header)"),
     (SOI + b"\xff\xe0\0\x01" + bytes(20), "damaged or cut-short JPEG header"),
     (SOI + _segment(0xE0, bytes(20))[:-1], "damaged or cut-short JPEG header"),
     (SOI + _frame()[:-1], "damaged or cut-short JPEG header"),
     (SOI + b"\xff\xc0\0\x07" + bytes(20), "damaged JPEG frame header"),
     (SOI + _frame(width=0), "JPEG without a stated size"),
     (SOI + _frame(height=0), "JPEG without a stated size"),
     (SOI + _segment(0xE0, bytes(4)) + b"\xff\xc0\0", "damaged or cut-short JPEG (no frame header)"),
     (SOI + b"\xff", "damaged or cut-short JPEG (no frame header)")],  # fmt: skip
)
def test_damaged_jpeg_headers_are_refused_with_what_is_wrong(data, message):
    assert _header_error(data) == message


def test_jpeg_header_alone_refuses_other_formats():
    for data in (PNG_SIGNATURE + bytes(40), b"\xff\xd8\xfe" + bytes(40), b"\xff\xd8"):
        with pytest.raises(ImageHeaderError) as info:
            jpeg_header(data)
        assert str(info.value) == "not a JPEG (no start-of-image marker)"


# --- PNG: the IHDR chunk, and a tRNS chunk before the image data.
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int = 0x10203, height: int = 0x405, bits: int = 8, colour: int = 2, *chunks: bytes) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, colour, 0, 0, 0))
    return PNG_SIGNATURE + ihdr + b"".join(chunks)


IDAT = _chunk(b"IDAT", b"x")
TRNS = _chunk(b"tRNS", b"\0\0")
PLTE = _chunk(b"PLTE", bytes(3 * 7))


@pytest.mark.parametrize(
    "colour, bits, chunks, channels, alpha",
    [(0, 16, [IDAT], 1, False), (0, 8, [TRNS, IDAT], 2, True), (2, 8, [IDAT, TRNS], 3, False), (2, 16, [TRNS], 4, True),
     (3, 4, [PLTE, IDAT], 3, False), (3, 8, [PLTE, TRNS, IDAT], 4, True), (3, 8, [PLTE, _chunk(b"IEND", b""), TRNS], 3, False),
     (4, 8, [TRNS, IDAT], 2, True), (6, 16, [IDAT], 4, True), (6, 8, [TRNS], 4, True),
     (2, 8, [struct.pack(">I", 2) + b"tRNS"], 4, True)],  # fmt: skip
)
def test_png_channels_and_transparency(colour, bits, chunks, channels, alpha):
    assert read_image_header(_png(0x10203, 0x405, bits, colour, *chunks)) == ImageHeader(
        "PNG", 0x10203, 0x405, channels, bits, alpha
    )


@pytest.mark.parametrize(
    "data, message",
    [(_png()[:32], "damaged or cut-short PNG header"), (_png().replace(b"IHDR", b"IHDX"), "damaged or cut-short PNG header"),
     (_png(width=0), "damaged PNG header"), (_png(height=0), "damaged PNG header"), (_png(colour=1), "damaged PNG header"),
     (_png(colour=5), "damaged PNG header"), (_png(colour=7), "damaged PNG header")],  # fmt: skip
)
def test_damaged_png_headers_are_refused(data, message):
    assert _header_error(data) == message


def test_png_header_alone_is_enough():
    assert read_image_header(_png()[:33]) == ImageHeader("PNG", 0x10203, 0x405, 3, 8, False)


# --- BMP: the core (12-byte) and the Windows (40 bytes and more) info headers.
def _bmp(info_size: int, width: int, height: int, bits: int, size: int = 54) -> bytes:
    layout = "<HHHH" if info_size == 12 else "<iiHH"
    return (b"BM" + bytes(12) + struct.pack("<I", info_size) + struct.pack(layout, width, height, 1, bits) + bytes(40))[:size]


@pytest.mark.parametrize("bits", [1, 4, 8, 16, 24, 32])
def test_bmp_headers_of_every_depth(bits):
    expected = ImageHeader("BMP", 0x10203, 0x405, 4 if bits == 32 else 3, 8, alpha=bits == 32)
    assert read_image_header(_bmp(40, 0x10203, 0x405, bits, size=30)) == expected
    assert read_image_header(_bmp(124, 0x10203, -0x405, bits)) == expected  # top-down rows
    assert read_image_header(_bmp(12, 0x8765, 0x405, bits, size=26)) == ImageHeader(
        "BMP", 0x8765, 0x405, 4 if bits == 32 else 3, 8, alpha=bits == 32
    )


@pytest.mark.parametrize(
    "data, message",
    [(_bmp(40, 8, 8, 24, size=25), "damaged or cut-short BMP header"), (_bmp(40, 8, 8, 24, size=29), "damaged BMP header"),
     (_bmp(39, 8, 8, 24), "damaged BMP header"), (_bmp(16, 8, 8, 24), "damaged BMP header"),
     (_bmp(40, 0, 8, 24), "damaged BMP header"), (_bmp(40, -8, 8, 24), "damaged BMP header"),
     (_bmp(40, 8, 0, 24), "damaged BMP header"), (_bmp(12, 8, 0, 24), "damaged BMP header"),
     (_bmp(40, 8, 8, 0), "damaged BMP header"), (_bmp(40, 8, 8, 2), "damaged BMP header"),
     (_bmp(40, 8, 8, 64), "damaged BMP header")],  # fmt: skip
)
def test_damaged_bmp_headers_are_refused(data, message):
    assert _header_error(data) == message


# --- WebP: extended (VP8X), lossless (VP8L) and lossy (VP8) files.
def _webp(chunk: bytes, body: bytes, size: int = 40) -> bytes:
    return (b"RIFF" + struct.pack("<I", 1000) + b"WEBP" + chunk + struct.pack("<I", 100) + body + bytes(40))[:size]


def _vp8x(flags: int, width: int, height: int) -> bytes:
    return _webp(b"VP8X", bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def _vp8l(width: int, height: int, alpha: bool, version: int = 0, signature: int = 0x2F) -> bytes:
    bits = (width - 1) | (height - 1) << 14 | alpha << 28 | version << 29
    return _webp(b"VP8L", bytes([signature]) + struct.pack("<I", bits))


def _vp8(width: int, height: int, start: bytes = b"\x9d\x01\x2a") -> bytes:
    return _webp(b"VP8 ", bytes(3) + start + struct.pack("<HH", width, height))


@pytest.mark.parametrize(
    "data, expected",
    [(_vp8x(0x10, 0x123456, 0xABCDEF), ImageHeader("WebP", 0x123456, 0xABCDEF, 4, 8, True)),
     (_vp8x(0xEF, 1, 2), ImageHeader("WebP", 1, 2, 3, 8, False)),
     (_vp8l(16384, 16384, True, version=7), ImageHeader("WebP", 16384, 16384, 4, 8, True)),
     (_vp8l(0x2345, 0x1234, False, version=7), ImageHeader("WebP", 0x2345, 0x1234, 3, 8, False)),
     (_vp8l(1, 1, False), ImageHeader("WebP", 1, 1, 3, 8, False)),
     (_vp8(0xC000 | 0x3FFF, 0x4000 | 0x0123), ImageHeader("WebP", 0x3FFF, 0x0123, 3, 8, False)),
     (_vp8x(0x10, 7, 9)[:30], ImageHeader("WebP", 7, 9, 4, 8, True))],  # fmt: skip
)
def test_webp_headers_of_every_kind(data, expected):
    assert read_image_header(data) == expected


@pytest.mark.parametrize(
    "data, message",
    [(_vp8x(0x10, 7, 9)[:29], "damaged or cut-short WebP header"), (_webp(b"ALPH", bytes(20)), "damaged WebP header"),
     (_vp8l(8, 8, False, signature=0x2E), "damaged WebP header"), (_vp8(8, 8, start=b"\x9d\x01\x2b"), "damaged WebP header"),
     (_vp8(0, 8), "damaged WebP header"), (_vp8(8, 0xC000), "damaged WebP header")],  # fmt: skip
)
def test_damaged_webp_headers_are_refused(data, message):
    assert _header_error(data) == message


# --- TIFF: the first directory, in either byte order, classic or BigTIFF.
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("big", [False, True], ids=["classic", "BigTIFF"])
@pytest.mark.parametrize(
    "entries, expected",
    [([(256, 4, [70000]), (257, 3, [5]), (258, 3, [16, 16, 16]), (277, 3, [3])], ImageHeader("TIFF", 70000, 5, 3, 16, False)),
     ([(256, 3, [9]), (257, 4, [70001]), (258, 3, [8] * 4), (277, 3, [4]), (262, 3, [2])], ImageHeader("TIFF", 9, 70001, 4, 8, True)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 3, [8] * 4), (277, 3, [4]), (262, 3, [5])], ImageHeader("TIFF", 9, 8, 4, 8, False)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 3, [8] * 4), (277, 3, [4])], ImageHeader("TIFF", 9, 8, 4, 8, True)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 3, [8, 8]), (277, 3, [2])], ImageHeader("TIFF", 9, 8, 2, 8, True)),
     ([(256, 3, [9]), (257, 3, [8]), (277, 3, [3]), (338, 3, [2])], ImageHeader("TIFF", 9, 8, 3, 1, True)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 4, [32]), (277, 3, [0]), (262, 3, [5])], ImageHeader("TIFF", 9, 8, 1, 32, False)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 3, [0]), (262, 5, [1, 2])], ImageHeader("TIFF", 9, 8, 1, 1, False)),
     ([(256, 3, [9]), (257, 3, [8]), (258, 4, [16, 16, 16]), (277, 3, [3])], ImageHeader("TIFF", 9, 8, 3, 16, False))],  # fmt: skip
)
def test_tiff_headers(entries, expected, order, big):
    assert read_image_header(tiff_file(entries, order, big)) == expected


@pytest.mark.parametrize("order", ["<", ">"])
def test_bigtiff_sizes_of_64_bits(order):
    entries = [(256, 16, [1 << 40]), (257, 16, [3]), (258, 16, [8, 8, 8]), (277, 16, [3])]
    assert read_image_header(tiff_file(entries, order, big=True)) == ImageHeader("TIFF", 1 << 40, 3, 3, 8, False)


@pytest.mark.parametrize("big", [False, True], ids=["classic", "BigTIFF"])
def test_tiff_first_directory_that_ends_the_data(big):
    data = tiff_file([(256, 3, [9]), (257, 3, [8])], big=big)
    directory_end = len(data) - (8 if big else 4)  # without the offset of a next directory
    assert read_image_header(data[:directory_end]) == ImageHeader("TIFF", 9, 8, 1, 1, False)
    assert _header_error(data[: directory_end - 1]) == "damaged or cut-short TIFF directory"


@pytest.mark.parametrize(
    "data, message",
    [(tiff_file([(256, 3, [9])]), "TIFF without a stated size"), (tiff_file([(257, 3, [9])]), "TIFF without a stated size"),
     (tiff_file([(256, 3, [0]), (257, 3, [9])]), "TIFF without a stated size"),
     (tiff_file([(256, 5, [9, 1]), (257, 3, [9])]), "TIFF without a stated size"),
     (b"II*\0" + struct.pack("<I", 4000) + bytes(40), "damaged or cut-short TIFF header"),
     (b"MM\0+" + struct.pack(">HHQ", 8, 0, 16) + struct.pack(">Q", 1 << 60) + bytes(40), "damaged or cut-short TIFF directory"),
     (tiff_file([(256, 4, [9, 9]), (257, 3, [9])])[:-5], "damaged or cut-short TIFF header"),
     (b"II*\0\x08\0\0", "damaged or cut-short TIFF header")],  # fmt: skip
)
def test_damaged_tiff_headers_are_refused(data, message):
    assert _header_error(data) == message


def test_headers_state_sizes_beyond_the_signed_range_as_they_are():
    # Forged sizes must come out as the huge numbers they are (and be refused as too large), never negative.
    icc = _segment(0xE2, b"ICC_PROFILE\0" + bytes(40000))  # a large colour profile before the frame header
    assert read_image_header(SOI + icc + _frame(0xC0, 40000, 50000, 8, 3)) == ImageHeader(
        "JPEG", 40000, 50000, 3, 8, alpha=False, sof=0xC0
    )
    assert read_image_header(_png(0xFFFFFFFF, 0x80000000)).pixels == 0xFFFFFFFF * 0x80000000
    huge_chunk = struct.pack(">I", 0x80000000) + b"zTXt" + bytes(8)  # skipping it leaves the data: no tRNS seen
    assert read_image_header(_png(8, 8, 8, 2, huge_chunk, TRNS)).alpha is False
    tiff_sizes = [(256, 3, [40000]), (257, 4, [0x80000000])]
    assert read_image_header(tiff_file(tiff_sizes)) == ImageHeader("TIFF", 40000, 0x80000000, 1, 1, False)
    big_sizes = [(256, 16, [1 << 63]), (257, 3, [9])]
    assert read_image_header(tiff_file(big_sizes, big=True)) == ImageHeader("TIFF", 1 << 63, 9, 1, 1, False)


def test_one_pixel_pictures():
    assert read_image_header(_bmp(40, 1, -1, 24)) == ImageHeader("BMP", 1, 1, 3, 8, False)
    assert read_image_header(tiff_file([(256, 3, [1]), (257, 3, [1])])) == ImageHeader("TIFF", 1, 1, 1, 1, False)
    assert read_image_header(_vp8(1, 1)) == ImageHeader("WebP", 1, 1, 3, 8, False)


def test_webp_extended_header_followed_by_its_chunks():
    data = _vp8x(0x10, 640, 480)[:30] + b"ALPH" + struct.pack("<I", 100) + bytes(100)
    assert read_image_header(data) == ImageHeader("WebP", 640, 480, 4, 8, True)


@pytest.mark.parametrize(
    "data, message",
    [(b"II*\0" + struct.pack("<I", 0xFFFFFFF0) + bytes(40), "damaged or cut-short TIFF header"),
     (b"MM\0*" + struct.pack(">I", 0xFFFFFFF0) + bytes(40), "damaged or cut-short TIFF header"),
     (b"II+\0" + struct.pack("<HHQ", 8, 0, 2**64 - 16) + bytes(40), "damaged or cut-short TIFF header"),
     (b"II*\0" + struct.pack("<IH", 8, 0xFFFF) + bytes(400), "damaged or cut-short TIFF directory"),
     (b"II+\0" + struct.pack("<HHQQ", 8, 0, 16, 2**64 - 1) + bytes(400), "damaged or cut-short TIFF directory")],  # fmt: skip
)
def test_tiff_directories_beyond_the_data_are_refused(data, message):
    assert _header_error(data) == message


def test_a_bigtiff_pointing_past_any_possible_offset_is_one_line(tmp_path):
    path = tmp_path / "forged.tif"
    path.write_bytes(b"II+\0" + struct.pack("<HHQ", 8, 0, 2**64 - 16) + bytes(40))
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(info.value) == (
        f"{path} is not an image avatarify can read (damaged or cut-short TIFF header); choose another picture."
    )


@pytest.mark.parametrize("big", [False, True], ids=["classic", "BigTIFF"])
def test_tiff_values_stored_past_the_data_are_refused(big):
    data = bytearray(tiff_file([(256, 3, [9]), (257, 3, [8]), (258, 4, [8, 8, 8])], big=big))
    # The third entry's value field: where its three values would be stored.
    struct.pack_into("<Q" if big else "<I", data, 76 if big else 42, 2**64 - 16 if big else 2**32 - 16)
    assert _header_error(bytes(data)) == "damaged or cut-short TIFF header"
