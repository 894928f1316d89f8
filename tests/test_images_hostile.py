"""Avatars of any size: checked from the header before decoding, refused beyond the documented limits with one
line, and loaded within a fixed memory budget. Peak memory is measured in a child process under a hard cap."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from avatarify.core.errors import InputError
from avatarify.core.images import MAX_DECODE_BYTES, read_image, to_rgb_uint8
from bounded import GiB, run_bounded
from forged import (
    bmp_header,
    small_progressive_jpeg_claiming,
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
