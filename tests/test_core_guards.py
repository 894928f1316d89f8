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


def test_rate_limited_log_default_interval_is_one_second_inclusive(caplog):
    now = [100.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit.default"), clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="test.ratelimit.default")
    logged = [limited.warning("a", "bad a")]
    now[0] = 100.75
    logged += [limited.warning("a", "bad a")]
    now[0] = 101.0  # exactly one interval later: due again
    logged += [limited.warning("a", "bad a")]
    assert logged == [True, False, True]
    assert [r.getMessage() for r in caplog.records] == [
        "bad a",
        "bad a (and 1 more like it since the last such line)",
    ]


def test_rate_limited_log_forgets_kinds_rather_than_growing():
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.ratelimit.many"), clock=lambda: now[0])
    for i in range(10_000):
        now[0] += 0.01
        limited.warning(f"kind {i}", "made-up kind")
        limited.warning(f"kind {i}", "made-up kind")  # left out, and counted
    # The tables a flood of made-up kinds would grow: the left-out counts go with the kinds they count.
    assert len(limited._last) <= 1024  # noqa: SLF001
    assert len(limited._left_out) <= 1024  # noqa: SLF001


def _flooded(now: list[float], kinds: list[str], name: str) -> RateLimitedLog:
    """A log that has just logged one line of each of `kinds` at `now[0]`."""
    limited = RateLimitedLog(logging.getLogger(name), clock=lambda: now[0])
    assert all(limited.warning(kind, "bad") for kind in kinds)
    return limited


def test_rate_limited_log_full_table_forgets_only_stale_kinds():
    now = [0.0]
    active = [f"active {i}" for i in range(512)]
    limited = _flooded(now, active + [f"stale {i}" for i in range(511)], "test.ratelimit.stale")
    now[0] = 100.0
    assert all(limited.warning(kind, "bad") for kind in active)  # the active kinds go on; the stale ones fell silent
    assert limited.warning("last", "bad")  # the 1024th kind fills the table
    now[0] = 100.5
    assert limited.warning("new", "bad")  # the 1025th kind: the stale ones are forgotten to make room
    # Still limited: forgetting never lets a kind that is flooding right now through.
    assert not any(limited.warning(kind, "bad") for kind in active + ["new"])


def test_rate_limited_log_full_table_without_stale_kinds_forgets_the_oldest_half():
    now = [0.0]
    limited = _flooded(now, [f"kind {i}" for i in range(1024)], "test.ratelimit.half")
    now[0] = 0.5
    assert limited.warning("kind 1024", "bad")  # one kind too many: kinds 0 to 511 are forgotten
    assert limited.warning("kind 0", "bad") and limited.warning("kind 511", "bad")
    assert not limited.warning("kind 512", "bad") and not limited.warning("kind 1023", "bad")


def test_rate_limited_log_full_table_forgets_nothing_for_a_kind_it_knows(caplog):
    now = [0.0]
    limited = _flooded(now, [f"kind {i}" for i in range(1024)], "test.ratelimit.known")
    caplog.set_level(logging.INFO, logger="test.ratelimit.known")
    assert not limited.warning("kind 100", "bad 100") and not limited.warning("kind 100", "bad 100")
    now[0] = 1.5
    assert limited.warning("kind 5", "bad 5")  # known: no room needed, so kind 100 keeps its count
    assert limited.warning("kind 100", "bad 100")
    assert caplog.records[-1].getMessage() == "bad 100 (and 2 more like it since the last such line)"


def test_rate_limited_log_remembers_a_kind_heard_exactly_a_minute_ago(caplog):
    now = [-1.0]
    limited = _flooded(now, [f"old {i}" for i in range(1023)], "test.ratelimit.minute")
    caplog.set_level(logging.INFO, logger="test.ratelimit.minute")
    now[0] = 0.0
    assert limited.warning("edge", "bad edge")
    assert not limited.warning("edge", "bad edge") and not limited.warning("edge", "bad edge")
    now[0] = 60.0
    assert limited.warning("new", "bad new")  # forgets the "old" kinds, heard of 61 seconds ago, not "edge"
    assert limited.warning("edge", "bad edge")
    assert caplog.records[-1].getMessage() == "bad edge (and 2 more like it since the last such line)"


@pytest.mark.parametrize(
    "text, depth",
    [(b"{}", 1), (b"[]", 1), (b"[[]]", 2), (b'{"a": []}', 2), (b'{"a": [1, {"b": 2}]}', 3), (b'{"a": "[[[[{{{{"}', 1),
     (b'["\\"[[["]', 1), (b"[" * 5000, 5000), (b'["unterminated [[[[[[', 1), (b"", 0), (b"3", 0),
     (b"[[[], [[]]]]", 4), (b'{"a": {}, "b": {"c": {}}}', 3), (b'[{"a": 1}, {"b": [2]}, []]', 3)],  # fmt: skip
)
def test_nesting_depth_ignores_brackets_inside_strings(text, depth):
    assert nesting_depth(text) == depth


@pytest.mark.parametrize(
    "text, kind, message",
    [(b"[" * 100, "json depth", "JSON nested 100 levels deep, limit 4"),
     (b'{"a": ' + b"1" * 30 + b"}", "json number", "integer of 30 digits, limit 19"),
     (b'{"a": -' + b"1" * 20 + b"}", "json number", "integer of 20 digits, limit 19"),
     (b'{"a": 1e999}', "json number", "number '1e999' is out of range"),
     (b'{"a": 1.' + b"0" * 40 + b"}", "json number", "number '1.000000000000000000' is out of range"),
     (b'{"a": NaN}', "json number", "NaN is not a number JSON allows"),
     (b'{"a": -Infinity}', "json number", "-Infinity is not a number JSON allows"),
     (b'{"a": "\xff"}', "json encoding", "JSON is not valid UTF-8"),
     (b'{"a": ', "json syntax", "not JSON (Expecting value at byte 6)"),
     (b"x" * 1001, "json size", "JSON of 1001 bytes, limit 1000")],  # fmt: skip
)
def test_loads_bounded_refuses_with_one_error_kind_and_a_message(text, kind, message):
    with pytest.raises(JsonInputError) as info:
        loads_bounded(text, max_bytes=1000, max_depth=4)
    assert (info.value.kind, str(info.value)) == (kind, message)


def test_loads_bounded_accepts_exactly_its_bounds():
    assert loads_bounded(b"[" * 4 + b"]" * 4 + b" " * 992, max_bytes=1000, max_depth=4) == [[[[]]]]
    # By default an integer may have 19 digits (all of int64), and a float may be written with 32 characters.
    assert loads_bounded(b"[-9223372036854775808, 9999999999999999999]", max_bytes=100, max_depth=1) == [
        -9223372036854775808,
        9999999999999999999,
    ]
    assert loads_bounded(b"[1." + b"5" * 30 + b"]", max_bytes=100, max_depth=1) == [1.5555555555555556]
    for one_over, message in [
        (b"[12345678901234567890]", "integer of 20 digits, limit 19"),
        (b"[1." + b"5" * 31 + b"]", "number '1.555555555555555555' is out of range"),
    ]:
        with pytest.raises(JsonInputError) as info:
            loads_bounded(one_over, max_bytes=100, max_depth=1)
        assert (info.value.kind, str(info.value)) == ("json number", message)


@pytest.mark.parametrize(
    "text, bounds, message",
    [(b"1" * 5000, {"max_int_digits": 10_000}, "JSON refused (ValueError)"),  # past Python's own int() limit
     (b"[" * 100_000 + b"]" * 100_000, {"max_depth": 100_000}, "JSON refused (RecursionError)")],  # fmt: skip
)
def test_loads_bounded_lets_nothing_but_its_own_error_escape_generous_bounds(text, bounds, message):
    with pytest.raises(JsonInputError) as info:
        loads_bounded(text, **{"max_bytes": 1_000_000, "max_depth": 1, **bounds})
    assert (info.value.kind, str(info.value)) == ("json syntax", message)


def test_loads_bounded_reads_ordinary_json():
    assert loads_bounded(b'{"a": [1, 2.5, "x", true, null]}', max_bytes=100, max_depth=2) == {
        "a": [1, 2.5, "x", True, None]
    }
