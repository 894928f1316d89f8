"""The worker's wire format: multipart ZeroMQ messages made of a small JSON header and an optional image payload.

Every message is `[header, payload?]`: the header is a UTF-8 JSON object with the protocol version `v`,
the message `type` and the request `id` it belongs to; the payload, when the type carries one, is a
256x256 RGB image, raw or JPEG (named by the header's `enc`; avatars always travel raw, as the
worker checks them against their content hash). Nothing is ever unpickled: a peer can at worst
send bytes that fail validation, and such a message is dropped.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..core.frame import FRAME_SIZE

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 4096
# A 256x256 RGB frame is 196,608 bytes raw; JPEG at quality 100 stays below that.
MAX_PAYLOAD_BYTES = 512 * 1024
# ZeroMQ drops the connection of a peer that sends a bigger single part, before it is ever buffered whole.
MAX_PART_BYTES = 2 * MAX_PAYLOAD_BYTES
FRAME_SHAPE = (FRAME_SIZE, FRAME_SIZE, 3)
ENCODINGS = ("raw", "jpeg")
DEFAULT_JPEG_QUALITY = 90


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says why, for the log line."""


_INT = (int,)
_NUMBER = (int, float)

# type -> (required header fields and their JSON types, whether an image payload comes with it)
SCHEMAS: dict[str, tuple[dict[str, tuple[type, ...]], bool | None]] = {
    # client -> worker
    "hello": ({}, False),
    "ping": ({}, False),
    "avatar": ({"hash": (str,)}, None),  # hash only (a query), or hash + the image (an upload)
    "neutral": ({"seq": _INT}, True),
    "predict": (
        {
            "avatar": (str,),
            "neutral": _INT,
            "calibrate": (bool,),
            "relative": (bool,),
            "adapt_movement_scale": (bool,),
            "motion_strength": _NUMBER,
            "quality": _INT,
        },
        True,
    ),
    # worker -> client
    "welcome": ({}, False),
    "pong": ({}, False),
    "avatar_ok": ({"hash": (str,), "known": (bool,)}, False),
    "neutral_ok": ({"seq": _INT}, False),
    "result": ({"model_ms": _NUMBER}, True),
    "dropped": ({}, False),
    "error": ({"code": (str,), "message": (str,)}, False),
}


@dataclass(frozen=True)
class Message:
    """A validated message: its type, request id, header fields and (still encoded) payload."""

    type: str
    id: int
    header: dict[str, Any]
    payload: bytes | None = None

    def frame(self) -> np.ndarray:
        """The payload decoded as a 256x256 RGB uint8 image; ProtocolError if it is not one."""
        if self.payload is None:
            raise ProtocolError(f"{self.type} message has no image")
        return decode_image(self.header["enc"], self.payload)


def encode_image(image: np.ndarray, encoding: str, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """A 256x256 RGB uint8 image as payload bytes: raw pixels or JPEG at `quality`."""
    if image.shape != FRAME_SHAPE or image.dtype != np.uint8:
        raise ValueError(f"expected a {FRAME_SHAPE} uint8 image, got {image.shape} {image.dtype}")
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    if encoding != "jpeg":
        raise ValueError(f"unknown image encoding {encoding!r}; expected one of {ENCODINGS}")
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return data.tobytes()


def decode_image(encoding: str, payload: bytes) -> np.ndarray:
    """Payload bytes back to a 256x256 RGB uint8 image; ProtocolError if they are not one."""
    if encoding == "raw":
        if len(payload) != math.prod(FRAME_SHAPE):
            raise ProtocolError(f"raw image of {len(payload)} bytes, expected {math.prod(FRAME_SHAPE)}")
        return np.frombuffer(payload, dtype=np.uint8).reshape(FRAME_SHAPE).copy()
    if encoding != "jpeg":
        raise ProtocolError(f"unknown image encoding {encoding!r}")
    data = np.frombuffer(payload, dtype=np.uint8)
    # A small JPEG can claim a huge size; decoding at 1/8 scale first (DCT scaling, cheap) checks the
    # size while allocating at most 1/64 of what a full decode of a forged header would.
    preview = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)
    if preview is None or preview.shape != (FRAME_SIZE // 8, FRAME_SIZE // 8, 3):
        raise ProtocolError(f"undecodable JPEG or not {FRAME_SIZE}x{FRAME_SIZE}")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if decoded is None or decoded.shape != FRAME_SHAPE:
        raise ProtocolError(f"undecodable JPEG or not {FRAME_SIZE}x{FRAME_SIZE}")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def encode_message(kind: str, request_id: int, payload: bytes | None = None, **fields: Any) -> list[bytes]:
    """The parts of a message; `enc` (the payload's encoding) goes among the fields when there is a payload."""
    header = {"v": PROTOCOL_VERSION, "type": kind, "id": request_id, **fields}
    parts = [json.dumps(header, separators=(",", ":")).encode()]
    if payload is not None:
        parts.append(payload)
    return parts


def decode_message(parts: list[bytes]) -> Message:
    """Validate the parts of a received message; ProtocolError says what is wrong with a bad one."""
    if not 1 <= len(parts) <= 2:
        raise ProtocolError(f"{len(parts)} message parts, expected a header and at most one payload")
    raw_header = bytes(parts[0])
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"oversized header ({len(raw_header)} bytes, limit {MAX_HEADER_BYTES})")
    payload = bytes(parts[1]) if len(parts) == 2 else None
    if payload is not None and len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"oversized payload ({len(payload)} bytes, limit {MAX_PAYLOAD_BYTES})")
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"header is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    if header.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {header.get('v')!r}, expected {PROTOCOL_VERSION}")
    kind = header.get("type")
    if kind not in SCHEMAS:
        raise ProtocolError(f"unknown message type {kind!r}")
    fields, with_payload = SCHEMAS[kind]
    _check_field(header, "id", _INT, kind)
    for name, types in fields.items():
        _check_field(header, name, types, kind)
    if with_payload is not None and (payload is not None) != with_payload:
        raise ProtocolError(f"{kind} message {'without' if with_payload else 'with'} a payload")
    if payload is not None:
        allowed = ("raw",) if kind == "avatar" else ENCODINGS
        if header.get("enc") not in allowed:
            raise ProtocolError(f"{kind} payload encoding {header.get('enc')!r}, expected one of {allowed}")
    if kind == "predict" and not (math.isfinite(header["motion_strength"]) and 1 <= header["quality"] <= 100):
        raise ProtocolError("predict with a non-finite motion strength or a JPEG quality outside 1..100")
    return Message(type=kind, id=header["id"], header=header, payload=payload)


def _check_field(header: dict[str, Any], name: str, types: tuple[type, ...], kind: str) -> None:
    value = header.get(name)
    # JSON true/false arrive as bool, which Python also counts as an int.
    if value is None or not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise ProtocolError(f"{kind} message with a missing or invalid {name!r}")
