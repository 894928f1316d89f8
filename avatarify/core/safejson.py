"""JSON from untrusted sources, parsed within fixed bounds of size, nesting depth and number size.

Python's `json` module recurses once per nesting level (a few KB of `[` raise RecursionError), turns a
400-digit integer into an int that later overflows float conversions, and accepts NaN and Infinity. Here all of
these are refused before or while parsing, as one `JsonInputError`, and nothing else escapes.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

# JSON's own tokens as far as nesting goes: a whole string (skipped, so that "[[[" in a string does not count),
# a bracket, or a quote that opens a string never closed (JSON fails there, so nothing after it nests).
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]|"', re.DOTALL)


class JsonInputError(ValueError):
    """Untrusted JSON that is malformed or beyond the bounds; `kind` names which rule it broke (for logs)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def loads_bounded(
    data: bytes, *, max_bytes: int, max_depth: int, max_int_digits: int = 19, max_float_chars: int = 32
) -> Any:
    """Parse UTF-8 JSON `data`, refusing more than `max_bytes`, nesting deeper than `max_depth` (a flat object is
    depth 1), integers with more than `max_int_digits` digits, floats written with more than `max_float_chars`
    characters, non-finite numbers (NaN, Infinity, 1e999) and invalid UTF-8."""
    if len(data) > max_bytes:
        raise JsonInputError(f"JSON of {len(data)} bytes, limit {max_bytes}", "json size")
    depth = nesting_depth(data)
    if depth > max_depth:
        raise JsonInputError(f"JSON nested {depth} levels deep, limit {max_depth}", "json depth")

    def parse_int(text: str) -> int:
        digits = len(text.lstrip("-"))  # the sign is no digit, in the bound or in the message
        if digits > max_int_digits:
            raise JsonInputError(f"integer of {digits} digits, limit {max_int_digits}", "json number")
        return int(text)

    def parse_float(text: str) -> float:
        value = float(text) if len(text) <= max_float_chars else math.inf
        if not math.isfinite(value):
            raise JsonInputError(f"number {text[:20]!r} is out of range", "json number")
        return value

    def parse_constant(text: str) -> Any:
        raise JsonInputError(f"{text} is not a number JSON allows", "json number")

    try:
        text = data.decode("utf-8")
        return json.loads(text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant)
    except JsonInputError:
        raise
    except UnicodeDecodeError:
        raise JsonInputError("JSON is not valid UTF-8", "json encoding") from None
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"not JSON ({exc.msg} at byte {exc.pos})", "json syntax") from None
    except (RecursionError, ValueError, OverflowError, MemoryError) as exc:  # belt and braces: never escape
        raise JsonInputError(f"JSON refused ({type(exc).__name__})", "json syntax") from None


def nesting_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count)."""
    if data.count(b"[") + data.count(b"{") <= 1:
        return int(b"[" in data or b"{" in data)  # the usual flat object, without a scan
    depth = deepest = 0
    for match in _TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
        elif token == b'"':
            break
    return deepest
