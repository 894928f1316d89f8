"""The small guards other layers build on: rate-limited logging and bounded JSON parsing."""
from __future__ import annotations

import logging

import pytest

from avatarify.core.ratelimit import RateLimitedLog
from avatarify.core.safejson import JsonInputError, loads_bounded, nesting_depth


def test_rate_limited_log_keeps_one_line_per_second_per_kind(caplog):
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), interval=1.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    logged = [limited.warning("a", "bad a %d", i) for i in range(500)]
    logged += [limited.warning("b", "bad b")]
    now[0] += 0.5
    logged += [limited.warning("a", "bad a again")]
    now[0] += 0.6
    logged += [limited.warning("a", "bad a later")]
    assert logged.count(True) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "bad a 0",
        "bad b",
        "bad a later (and 500 more like it since the last such line)",
    ]


def test_rate_limited_log_forgets_kinds_rather_than_growing():
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit.many"), clock=lambda: now[0])
    for i in range(10_000):
        now[0] += 0.01
        limited.warning(f"kind {i}", "made-up kind")
    assert len(limited._last) <= 1024  # noqa: SLF001 - the table a flood of made-up kinds would grow


@pytest.mark.parametrize(
    "text, depth",
    [(b"{}", 1), (b'{"a": [1, {"b": 2}]}', 3), (b'{"a": "[[[[{{{{"}', 1), (b'["\\"[[["]', 1), (b"[" * 5000, 5000),
     (b'["unterminated [[[[[[', 1), (b"", 0), (b"3", 0)],  # fmt: skip
)
def test_nesting_depth_ignores_brackets_inside_strings(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    "text, kind",
    [(b"[" * 100, "json depth"), (b'{"a": ' + b"1" * 30 + b"}", "json number"), (b'{"a": 1e999}', "json number"),
     (b'{"a": NaN}', "json number"), (b'{"a": -Infinity}', "json number"), (b'{"a": "\xff"}', "json encoding"),
     (b'{"a": ', "json syntax"), (b"x" * 2000, "json size")],  # fmt: skip
)
def test_loads_bounded_refuses_with_one_error_kind(text, kind):
    with pytest.raises(JsonInputError) as info:
        loads_bounded(text, max_bytes=1000, max_depth=4)
    assert info.value.kind == kind


def test_loads_bounded_reads_ordinary_json():
    assert loads_bounded(b'{"a": [1, 2.5, "x", true, null]}', max_bytes=100, max_depth=2) == {
        "a": [1, 2.5, "x", True, None]
    }
