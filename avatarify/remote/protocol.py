"""The worker's wire format: multipart ZeroMQ messages made of a small JSON header and an optional image payload.

Every message is `[header, payload?]`: the header is a UTF-8 JSON object with the protocol version `v`,
the message `type` and the request `id` it belongs to; the payload, when the type carries one, is a square RGB
image, raw or JPEG (named by the header's `enc`; avatars always travel raw, as the worker checks them against
their content hash), or for a `report` a JSON object. Frames to the worker are 256x256; results have the side the
worker announced in its `welcome` (256 for FOMM, 512 for LivePortrait). Nothing is ever unpickled: a peer can at worst
send bytes that fail validation, and such a message is dropped.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ..core.frame import FRAME_SIZE
from ..core.imageheader import SEQUENTIAL_HUFFMAN, ImageHeaderError, jpeg_header
from ..core.safejson import JsonInputError, loads_bounded

PROTOCOL_VERSION = 2
MAX_HEADER_BYTES = 4096
# Headers are flat objects; one more level leaves room for a future field without letting a peer nest deeply.
MAX_HEADER_DEPTH = 2
# A 512x512 RGB result is 786,432 bytes raw; JPEG at quality 100 stays below that.
MAX_PAYLOAD_BYTES = 1024 * 1024
# The sides a result may have (the engines' outputs).
RESULT_SIDES = (256, 512)
# ZeroMQ drops the connection of a peer that sends a bigger single part, before it is ever buffered whole.
MAX_PART_BYTES = 2 * MAX_PAYLOAD_BYTES
ENCODINGS = ("raw", "jpeg")
DEFAULT_JPEG_QUALITY = 90
MAX_INTEGER = 2**63 - 1
MOTION_STRENGTH_LIMIT = 100.0
MAX_MODEL_MS = 1e7
MAX_TEXT = 200


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says why, for the log line, and `kind` names the rule
    it broke, so that repeats of one mistake are logged once a second."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.kind = kind


Check = Callable[[Any], bool]


def _integer(low: int, high: int) -> Check:
    # JSON true/false arrive as bool, which Python also counts as an int.
    return lambda value: type(value) is int and low <= value <= high


def _number(low: float, high: float) -> Check:
    return lambda value: type(value) in (int, float) and low <= value <= high


def _text(pattern: str) -> Check:
    compiled = re.compile(pattern)
    return lambda value: type(value) is str and compiled.fullmatch(value) is not None


_BOOL: Check = lambda value: type(value) is bool  # noqa: E731
_ID = _integer(0, MAX_INTEGER)
_HASH = _text(r"[0-9a-f]{1,64}")

# type -> (required header fields and how each is checked, whether an image payload comes with it)
SCHEMAS: dict[str, tuple[dict[str, Check], bool | None]] = {
    # client -> worker
    "hello": ({}, False),
    "ping": ({}, False),
    "bye": ({}, False),  # the client is leaving: its place is free
    "status": ({}, False),  # figures for monitoring (`avatarify worker status`); holds no place
    "avatar": ({"hash": _HASH}, None),  # hash only (a query), or hash + the image (an upload)
    "neutral": ({"seq": _ID}, True),
    "predict": (
        {
            "avatar": _HASH,
            "neutral": _ID,
            "calibrate": _BOOL,
            "relative": _BOOL,
            "adapt_movement_scale": _BOOL,
            "motion_strength": _number(-MOTION_STRENGTH_LIMIT, MOTION_STRENGTH_LIMIT),
            "quality": _integer(1, 100),
        },
        True,
    ),
    # worker -> client
    "welcome": ({"size": lambda value: type(value) is int and value in RESULT_SIDES}, False),
    "pong": ({}, False),
    "avatar_ok": ({"hash": _HASH, "known": _BOOL}, False),
    "neutral_ok": ({"seq": _ID}, False),
    "result": ({"model_ms": _number(0.0, MAX_MODEL_MS)}, True),
    "dropped": ({}, False),
    "report": ({}, True),  # the answer to `status`: a JSON object as the payload
    # Printable text only: both sides write these into their logs.
    "error": ({"code": _text(r"[a-z_]{1,32}"), "message": _text(rf"[ -~]{{1,{MAX_TEXT}}}")}, False),
}
# Payload encodings other than the image ones: avatars travel raw (checked against their hash), reports as JSON.
_PAYLOAD_ENCODINGS = {"avatar": ("raw",), "report": ("json",)}


@dataclass(frozen=True)
class Message:
    """A validated message: its type, request id, header fields and (still encoded) payload."""

    type: str
    id: int
    header: dict[str, Any]
    payload: bytes | None = None

    def frame(self, side: int = FRAME_SIZE) -> np.ndarray:
        """The payload decoded as a `side` x `side` RGB uint8 image; ProtocolError if it is not one."""
        if self.payload is None:
            raise ProtocolError(f"{self.type} message has no image", "payload presence")
        return decode_image(self.header["enc"], self.payload, side)


def encode_image(image: np.ndarray, encoding: str, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """A square RGB uint8 image (256x256, or a 512x512 result) as payload bytes: raw pixels or JPEG at `quality`."""
    if image.dtype != np.uint8 or image.shape not in {(side, side, 3) for side in RESULT_SIDES}:
        raise ValueError(f"expected a square uint8 RGB image of side {RESULT_SIDES}, got {image.shape} {image.dtype}")
    if encoding == "raw":
        return np.ascontiguousarray(image).tobytes()
    if encoding != "jpeg":
        raise ValueError(f"unknown image encoding {encoding!r}; expected one of {ENCODINGS}")
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return data.tobytes()


def decode_image(encoding: str, payload: bytes, side: int = FRAME_SIZE) -> np.ndarray:
    """Payload bytes back to a `side` x `side` RGB uint8 image; ProtocolError if they are not one.

    A JPEG's size and coding are read from its header bytes before any decoding: only a baseline (sequential)
    8-bit colour JPEG of exactly the agreed size is decoded, so a small file claiming a huge size costs nothing.
    """
    shape = (side, side, 3)
    if encoding == "raw":
        if len(payload) != math.prod(shape):
            raise ProtocolError(f"raw image of {len(payload)} bytes, expected {math.prod(shape)}", "raw size")
        return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
    if encoding != "jpeg":
        raise ProtocolError(f"unknown image encoding {encoding!r}", "encoding")
    try:
        header = jpeg_header(payload)
    except ImageHeaderError as exc:
        raise ProtocolError(f"undecodable JPEG: {exc}", "jpeg header") from None
    if (header.width, header.height) != (side, side):
        raise ProtocolError(f"JPEG of {header.width}x{header.height}, not {side}x{side}", "jpeg size")
    if header.sof not in SEQUENTIAL_HUFFMAN or header.bits != 8 or header.channels != 3:
        raise ProtocolError(
            f"JPEG coded as {header.sof:#x} with {header.channels} {header.bits}-bit channels; only baseline 8-bit "
            "colour JPEG is accepted",
            "jpeg coding",
        )
    decoded = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if decoded is None or decoded.shape != shape:
        raise ProtocolError(f"undecodable JPEG or not {side}x{side}", "jpeg data")
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def encode_message(kind: str, request_id: int, payload: bytes | None = None, **fields: Any) -> list[bytes]:
    """The parts of a message; `enc` (the payload's encoding) goes among the fields when there is a payload."""
    header = {"v": PROTOCOL_VERSION, "type": kind, "id": request_id, **fields}
    parts = [json.dumps(header, separators=(",", ":")).encode()]
    if payload is not None:
        parts.append(payload)
    return parts


def decode_message(parts: list[bytes]) -> Message:
    """Validate the parts of a received message; ProtocolError says what is wrong with a bad one.

    Nothing a peer sends makes this raise anything else: sizes, nesting depth, numbers and strings are all
    checked within fixed bounds.
    """
    if not 1 <= len(parts) <= 2:
        raise ProtocolError(f"{len(parts)} message parts, expected a header and at most one payload", "parts")
    raw_header = bytes(parts[0])
    if len(raw_header) > MAX_HEADER_BYTES:
        raise ProtocolError(f"oversized header ({len(raw_header)} bytes, limit {MAX_HEADER_BYTES})", "header size")
    payload = bytes(parts[1]) if len(parts) == 2 else None
    if payload is not None and len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"oversized payload ({len(payload)} bytes, limit {MAX_PAYLOAD_BYTES})", "payload size")
    try:
        header = loads_bounded(raw_header, max_bytes=MAX_HEADER_BYTES, max_depth=MAX_HEADER_DEPTH)
    except JsonInputError as exc:
        raise ProtocolError(f"header is not JSON within bounds: {exc}", exc.kind) from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object", "header type")
    if header.get("v") != PROTOCOL_VERSION or type(header.get("v")) is not int:
        raise ProtocolError(f"protocol version {_shown(header.get('v'))}, expected {PROTOCOL_VERSION}", "version")
    kind = header.get("type")
    if type(kind) is not str or kind not in SCHEMAS:
        raise ProtocolError(f"unknown message type {_shown(kind)}", "message type")
    fields, with_payload = SCHEMAS[kind]
    for name, check in (("id", _ID), *fields.items()):
        if not check(header.get(name)):
            raise ProtocolError(f"{kind} message with a missing or invalid {name!r}", "field")
    if with_payload is not None and (payload is not None) != with_payload:
        raise ProtocolError(f"{kind} message {'without' if with_payload else 'with'} a payload", "payload presence")
    if payload is not None:
        allowed = _PAYLOAD_ENCODINGS.get(kind, ENCODINGS)
        if header.get("enc") not in allowed:
            raise ProtocolError(f"{kind} payload encoding {_shown(header.get('enc'))}, expected one of {allowed}", "encoding")
    return Message(type=kind, id=header["id"], header=header, payload=payload)


def _shown(value: Any) -> str:
    """A peer's value as it may appear in a log line: short, and printable (repr escapes control characters)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
