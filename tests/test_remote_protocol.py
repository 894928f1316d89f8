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
from forged import jpeg


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


OVERSIZED_HEADER = b'{"v": 2, "type": "ping", "id": 1, "pad": "' + b"x" * MAX_HEADER_BYTES + b'"}'
NEUTRAL = b'{"v": 2, "type": "neutral", "id": 1, "seq": 1, "enc": "raw"}'


@pytest.mark.parametrize(
    "parts, reason, kind",
    [
        ([], "0 message parts, expected a header and at most one payload", "parts"),
        ([b"{}", b"", b""], "3 message parts, expected a header and at most one payload", "parts"),
        ([b"\xff\xfe\x00garbage"], "header is not JSON within bounds: ", "json encoding"),
        ([b'{"v": 2, "type": "ping", "id": {"a": {}}}'], "header is not JSON within bounds: ", "json depth"),
        ([b"[1, 2, 3]"], "header is not a JSON object", "header type"),
        ([b'{"v": 99, "type": "ping", "id": 1}'], "protocol version 99, expected 2", "version"),
        ([b'{"v": 2.0, "type": "ping", "id": 1}'], "protocol version 2.0, expected 2", "version"),
        ([b'{"v": 2, "type": "launch", "id": 1}'], "unknown message type 'launch'", "message type"),
        ([b'{"v": 2, "type": "ping"}'], "ping message with a missing or invalid 'id'", "field"),
        ([b'{"v": 2, "type": "ping", "id": true}'], "ping message with a missing or invalid 'id'", "field"),
        (
            [b'{"v": 2, "type": "neutral", "id": 1, "seq": "one", "enc": "raw"}', b"x"],
            "neutral message with a missing or invalid 'seq'",
            "field",
        ),
        ([b'{"v": 2, "type": "neutral", "id": 1, "seq": 1}'], "neutral message without a payload", "payload presence"),
        ([b'{"v": 2, "type": "ping", "id": 1}', b"x"], "ping message with a payload", "payload presence"),
        (
            [b'{"v": 2, "type": "neutral", "id": 1, "seq": 1, "enc": "pickle"}', b"x"],
            "neutral payload encoding 'pickle', expected one of ('raw', 'jpeg')",
            "encoding",
        ),
        (
            [b'{"v": 2, "type": "avatar", "id": 1, "hash": "ab", "enc": "jpeg"}', b"x"],
            "avatar payload encoding 'jpeg', expected one of ('raw',)",
            "encoding",
        ),
        (
            [OVERSIZED_HEADER],
            f"oversized header ({len(OVERSIZED_HEADER)} bytes, limit {MAX_HEADER_BYTES})",
            "header size",
        ),
        (
            [NEUTRAL, bytes(MAX_PAYLOAD_BYTES + 1)],
            f"oversized payload ({MAX_PAYLOAD_BYTES + 1} bytes, limit {MAX_PAYLOAD_BYTES})",
            "payload size",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(parts, reason, kind):
    with pytest.raises(ProtocolError) as refused:
        decode_message(parts)
    assert str(refused.value).startswith(reason)
    # The worker logs repeats of one mistake once a second: the kind names the rule that was broken.
    assert refused.value.kind == kind


def test_sizes_at_the_limits_are_accepted():
    padding = b"x" * (MAX_HEADER_BYTES - len(b'{"v":2,"type":"ping","id":1,"pad":""}'))
    header = b'{"v":2,"type":"ping","id":1,"pad":"' + padding + b'"}'
    assert len(header) == MAX_HEADER_BYTES
    assert decode_message([header]).type == "ping"
    message = decode_message([NEUTRAL, bytes(MAX_PAYLOAD_BYTES)])
    assert (message.type, len(message.payload)) == ("neutral", MAX_PAYLOAD_BYTES)


def test_a_peers_values_are_shown_short_in_the_log():
    def refusal(kind: str) -> str:
        with pytest.raises(ProtocolError) as refused:
            decode_message(encode_message(kind, 1))
        return str(refused.value)

    # repr() of 38 letters is 40 characters: shown whole; one more letter and it is cut to 37 characters and "...".
    assert refusal("x" * 38) == f"unknown message type {'x' * 38!r}"
    assert refusal("x" * 39) == "unknown message type '" + "x" * 36 + "..."
    assert refusal("x" * 4000) == "unknown message type '" + "x" * 36 + "..."


def test_headers_are_compact_json():
    assert encode_message("ping", 5) == [b'{"v":2,"type":"ping","id":5}']


def test_predict_values_are_checked(frame):
    payload = encode_image(frame, "raw")
    with pytest.raises(ProtocolError, match="invalid 'motion_strength'"):
        decode_message(encode_message("predict", 1, payload, **predict_fields(motion_strength="strong")))
    with pytest.raises(ProtocolError, match="invalid .quality."):
        decode_message(encode_message("predict", 1, payload, **predict_fields(quality=0)))
    with pytest.raises(ProtocolError, match="invalid 'calibrate'"):
        decode_message(encode_message("predict", 1, payload, **predict_fields(calibrate=1)))


def refusal(encoding: str, payload: bytes, side: int = 256) -> tuple[str, str]:
    """The message and kind of the ProtocolError that decoding `payload` raises."""
    with pytest.raises(ProtocolError) as refused:
        decode_image(encoding, payload, side)
    return str(refused.value), refused.value.kind


def test_images_that_are_not_256_frames_are_refused(frame):
    assert refusal("raw", bytes(100)) == ("raw image of 100 bytes, expected 196608", "raw size")
    assert refusal("png", frame.tobytes()) == ("unknown image encoding 'png'", "encoding")
    message, kind = refusal("jpeg", b"\xff\xd8 not really a jpeg")
    assert message.startswith("undecodable JPEG: ") and kind == "jpeg header"
    assert refusal("jpeg", jpeg(frame[:128, :128])) == ("JPEG of 128x128, not 256x256", "jpeg size")
    # A forged size: a tiny file claiming 4000x4000 pixels is refused without decoding it in full.
    ok, huge = cv2.imencode(".jpg", np.zeros((4000, 4000, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert len(huge) < MAX_PAYLOAD_BYTES
    assert refusal("jpeg", huge.tobytes()) == ("JPEG of 4000x4000, not 256x256", "jpeg size")


@pytest.mark.parametrize("progressive, grey, sof, channels", [(True, False, 0xC2, 3), (False, True, 0xC0, 1)])
def test_only_baseline_colour_jpegs_are_decoded(frame, progressive, grey, sof, channels):
    image = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if grey else frame
    assert refusal("jpeg", jpeg(image, progressive=progressive)) == (
        f"JPEG coded as {sof:#x} with {channels} 8-bit channels; only baseline 8-bit colour JPEG is accepted",
        "jpeg coding",
    )


def test_a_jpeg_cut_short_after_a_sound_header_is_refused(frame):
    whole = jpeg(frame)
    cut = whole[: whole.find(b"\xff\xda") + 20]  # the scan has begun, its data is missing
    assert refusal("jpeg", cut) == ("undecodable JPEG or not 256x256", "jpeg data")


def test_jpeg_quality_is_the_senders_choice(frame):
    sizes = []
    for quality in (20, 50, 80, 97):
        payload = encode_image(frame, "jpeg", quality)
        sizes.append(len(payload))
        assert np.abs(decode_image("jpeg", payload).astype(int) - frame).mean() < 6
    assert sizes == sorted(sizes) and len(set(sizes)) == 4


def test_a_message_without_an_image_has_no_frame():
    query = decode_message(encode_message("avatar", 4, hash="cafe"))  # asks whether the worker knows the avatar
    assert query.payload is None
    with pytest.raises(ProtocolError, match="^avatar message has no image$") as refused:
        query.frame()
    assert refused.value.kind == "payload presence"


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
    result = decode_message(encode_message("result", 2, encode_image(large, "raw"), enc="raw", model_ms=12.5))
    np.testing.assert_array_equal(result.frame(512), large)
    welcome = decode_message(encode_message("welcome", 1, size=512))
    assert welcome.header["size"] == 512
    for size in (0, 300, 4096, "512", True):
        with pytest.raises(ProtocolError, match="size"):
            decode_message(encode_message("welcome", 1, size=size))
