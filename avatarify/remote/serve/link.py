"""What the Ray front end and its link process (the Ray driver) say to each other: multipart messages of a JSON header
and binary parts, over a socket in a folder only this user can enter.

Front end to link: `avatar` (key; the raw image), `predict` (id, avatar, enc, quality, motion; the frame as the
client sent it, the session's neutral pose or nothing), `pose` (id, enc; a frame). Link to front end: `state`
(ready, problem, replica states; every second, so silence means it is stuck), `result` (id, figures; the coded
frame, its pose), `pose` (id; the pose), `error` (id, code, message).
"""
from __future__ import annotations

import json
from typing import Any

from ...core.safejson import JsonInputError, loads_bounded

MAX_HEADER_BYTES = 64 * 1024


class LinkError(ValueError):
    """A link message that is not one."""


def pack(header: dict[str, Any], *parts: bytes) -> list[bytes]:
    return [json.dumps(header, separators=(",", ":")).encode(), *parts]


def unpack(frames: list[bytes]) -> tuple[dict[str, Any], list[bytes]]:
    """The header and the binary parts; LinkError when the header is not a JSON object with an `op`."""
    try:
        header = loads_bounded(frames[0], max_bytes=MAX_HEADER_BYTES, max_depth=6)
    except (JsonInputError, IndexError) as exc:
        raise LinkError(f"unreadable link message: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("op"), str):
        raise LinkError("link message without an op")
    return header, [bytes(part) for part in frames[1:]]
