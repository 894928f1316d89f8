"""The worker's wire format: what goes through, and what is refused and why."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from avatarify.remote.protocol import (
    MAX_HEADER_BYTES,
    MAX_PAYLOAD_BYTES,
    ProtocolError,
    decode_image,
    decode_message,
    encode_image,
    encode_message,
)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """A smooth 256x256 RGB picture with some detail, like a face crop."""
    y, x = np.mgrid[0:256, 0:256]
    image = np.stack([x, y, (x + y) // 2], axis=2).astype(np.uint8)
    cv2.circle(image, (128, 128), 60, (220, 180, 150), -1)
    return image


def predict_fields(**changes) -> dict:
    fields = dict(
        enc="raw",
        quality=90,
        avatar="ab" * 16,
        neutral=1,
        calibrate=False,
        relative=True,
        adapt_movement_scale=True,
        motion_strength=1.0,
    )
    fields.update(changes)
    return fields


def test_raw_frames_travel_exactly(frame):
    parts = encode_message("predict", 7, encode_image(frame, "raw"), **predict_fields())
    message = decode_message(parts)
    assert (message.type, message.id) == ("predict", 7)
    assert message.header["avatar"] == "ab" * 16
    np.testing.assert_array_equal(message.frame(), frame)


def test_jpeg_frames_are_smaller_and_close(frame):
    payload = encode_image(frame, "jpeg", 90)
    assert len(payload) < frame.nbytes // 4
    decoded = decode_message(encode_message("predict", 1, payload, **predict_fields(enc="jpeg"))).frame()
    assert decoded.shape == frame.shape
    assert np.abs(decoded.astype(int) - frame).mean() < 3


def test_header_is_plain_json():
    parts = encode_message("avatar_ok", 3, hash="cafe", known=True)
    assert len(parts) == 1
    assert json.loads(parts[0]) == {"v": 2, "type": "avatar_ok", "id": 3, "hash": "cafe", "known": True}


@pytest.mark.parametrize(
    "parts, reason",
    [
        ([], "0 message parts"),
        ([b"{}", b"", b""], "3 message parts"),
        ([b"\xff\xfe\x00garbage"], "not JSON"),
        ([b"[1, 2, 3]"], "not a JSON object"),
        ([b'{"v": 99, "type": "ping", "id": 1}'], "protocol version 99"),
        ([b'{"v": 2, "type": "launch", "id": 1}'], "unknown message type 'launch'"),
        ([b'{"v": 2, "type": "ping"}'], "invalid 'id'"),
        ([b'{"v": 2, "type": "ping", "id": true}'], "invalid 'id'"),
        ([b'{"v": 2, "type": "neutral", "id": 1, "seq": "one", "enc": "raw"}', b"x"], "invalid 'seq'"),
        ([b'{"v": 2, "type": "neutral", "id": 1, "seq": 1}'], "without a payload"),
        ([b'{"v": 2, "type": "ping", "id": 1}', b"x"], "with a payload"),
        ([b'{"v": 2, "type": "neutral", "id": 1, "seq": 1, "enc": "pickle"}', b"x"], "encoding 'pickle'"),
        ([b'{"v": 2, "type": "avatar", "id": 1, "hash": "ab", "enc": "jpeg"}', b"x"], "encoding 'jpeg'"),
        ([b'{"v": 2, "type": "ping", "id": 1, "pad": "' + b"x" * MAX_HEADER_BYTES + b'"}'], "oversized header"),
        (
            [b'{"v": 2, "type": "neutral", "id": 1, "seq": 1, "enc": "raw"}', bytes(MAX_PAYLOAD_BYTES + 1)],
            "oversized payload",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(parts, reason):
    with pytest.raises(ProtocolError, match=reason.replace("(", r"\(")):
        decode_message(parts)


def test_predict_values_are_checked(frame):
    payload = encode_image(frame, "raw")
    with pytest.raises(ProtocolError, match="invalid 'motion_strength'"):
        decode_message(encode_message("predict", 1, payload, **predict_fields(motion_strength="strong")))
    with pytest.raises(ProtocolError, match="invalid .quality."):
        decode_message(encode_message("predict", 1, payload, **predict_fields(quality=0)))
    with pytest.raises(ProtocolError, match="invalid 'calibrate'"):
        decode_message(encode_message("predict", 1, payload, **predict_fields(calibrate=1)))


def test_images_that_are_not_256_frames_are_refused(frame):
    with pytest.raises(ProtocolError, match="raw image of 100 bytes"):
        decode_image("raw", bytes(100))
    with pytest.raises(ProtocolError, match="undecodable JPEG"):
        decode_image("jpeg", b"\xff\xd8 not really a jpeg")
    ok, small = cv2.imencode(".jpg", frame[:128, :128])
    with pytest.raises(ProtocolError, match="not 256x256"):
        decode_image("jpeg", small.tobytes())
    # A forged size: a tiny file claiming 4000x4000 pixels is refused without decoding it in full.
    ok, huge = cv2.imencode(".jpg", np.zeros((4000, 4000, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert len(huge) < MAX_PAYLOAD_BYTES
    with pytest.raises(ProtocolError, match="not 256x256"):
        decode_image("jpeg", huge.tobytes())


def test_encoder_refuses_wrong_frames(frame):
    with pytest.raises(ValueError, match="expected a"):
        encode_image(frame[:100], "raw")
    with pytest.raises(ValueError, match="unknown image encoding"):
        encode_image(frame, "png")


def test_results_have_the_side_the_worker_announced() -> None:
    from avatarify.remote.protocol import decode_image, encode_image

    large = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for encoding in ("raw", "jpeg"):
        payload = encode_image(large, encoding)
        assert decode_image(encoding, payload, 512).shape == (512, 512, 3)
        with pytest.raises(ProtocolError, match="512|bytes"):
            decode_image(encoding, payload)  # a 256x256 frame was agreed: refused before decoding
    welcome = decode_message(encode_message("welcome", 1, size=512))
    assert welcome.header["size"] == 512
    for size in (0, 300, 4096, "512", True):
        with pytest.raises(ProtocolError, match="size"):
            decode_message(encode_message("welcome", 1, size=size))
