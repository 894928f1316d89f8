"""One component slot: the later load wins, whatever is replaced or discarded is closed, statuses are told once
per change, and closing never waits past its deadline."""
from __future__ import annotations

import logging
import threading
import time

from avatarify.core.status import OFF, failed, running, starting
from avatarify.session.slot import Slot, close_within


class Part:
    """A component that remembers being closed; `block` keeps its close waiting until set."""

    def __init__(self, name: str = "part", block: threading.Event | None = None, fails: bool = False) -> None:
        self.name = name
        self.block = block
        self.fails = fails
        self.closed = 0

    def close(self) -> None:
        if self.block is not None:
            self.block.wait(5)
        self.closed += 1
        if self.fails:
            raise RuntimeError("close failed")


class Holder:
    """Where a slot installs its component: `install` returns what was there before."""

    def __init__(self) -> None:
        self.current = None

    def install(self, obj):
        old, self.current = self.current, obj
        return old


def make_slot() -> tuple[Slot, Holder, list]:
    holder, heard = Holder(), []
    return Slot("model", holder.install, lambda name, status: heard.append((name, status))), holder, heard


def test_close_within_closes_and_says_whether_it_finished_in_time(caplog) -> None:
    assert close_within(None) and close_within(object()) and close_within(type("Odd", (), {"close": 3})())
    part = Part()
    assert close_within(part) is True and part.closed == 1
    with caplog.at_level(logging.ERROR):
        assert close_within(Part(fails=True)) is True  # a failing close is logged, never raised
    assert [r.getMessage() for r in caplog.records] == ["Closing Part failed"]
    release = threading.Event()
    stuck = Part(block=release)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        started = time.monotonic()
        assert close_within(stuck, timeout=0.02) is False
        assert time.monotonic() - started < 1.0
    assert caplog.messages == ["Closing Part took longer than 0 s; leaving it to finish."]
    # Left to a daemon thread, named for what it closes: a stuck close never keeps the app from quitting.
    (closer,) = [thread for thread in threading.enumerate() if thread.name == "close Part"]
    assert closer.daemon
    release.set()


def test_a_finished_load_is_installed_and_replaces_the_old_part() -> None:
    slot, holder, heard = make_slot()
    assert slot.status == OFF and slot.current is None and slot.closed is False
    first, second = Part("first"), Part("second")
    assert slot.finish(slot.begin(starting("Loading")), first, running("Ready")) is True
    assert holder.current is first and slot.current is first and slot.status == running("Ready")
    assert slot.finish(slot.begin(starting("Loading")), second, running("Ready")) is True
    assert holder.current is second and first.closed == 1 and second.closed == 0
    # Told once per change: "Loading" then "Ready", twice; nothing for a status that stays the same.
    assert heard == [("model", starting("Loading")), ("model", running("Ready"))] * 2


def test_installing_the_same_part_again_does_not_close_it() -> None:
    slot, holder, _ = make_slot()
    part = Part()
    slot.finish(slot.begin(OFF), part, running("Ready"))
    slot.finish(slot.begin(OFF), part, running("Ready"))
    assert holder.current is part and part.closed == 0


def test_the_later_load_wins_and_the_earlier_part_is_closed(caplog) -> None:
    slot, holder, heard = make_slot()
    early, late = slot.begin(starting("Loading A")), slot.begin(starting("Loading B"))
    assert not slot.is_current(early) and slot.is_current(late)
    slow = Part("slow")
    with caplog.at_level(logging.INFO):
        assert slot.finish(early, slow, running("A ready")) is False
    assert slow.closed == 1 and holder.current is None and slot.status == starting("Loading B")
    assert "Discarded a model that finished after a newer one was asked for" in caplog.messages
    assert slot.fail(early, failed("A broke")) is False and slot.status == starting("Loading B")
    assert slot.fail(late, failed("B broke")) is True and slot.status == failed("B broke")
    assert heard[-1] == ("model", failed("B broke"))


def test_clearing_removes_the_part_and_cancels_loads_in_flight() -> None:
    slot, holder, _ = make_slot()
    part = Part()
    slot.finish(slot.begin(OFF), part, running("Ready"))
    pending = slot.begin(starting("Loading"))
    slot.clear(failed("Turned off"))
    assert holder.current is None and slot.current is None and part.closed == 1
    assert slot.status == failed("Turned off") and not slot.is_current(pending)
    slot.clear()
    assert slot.status == OFF


def test_refresh_tells_only_a_change() -> None:
    slot, _, heard = make_slot()
    slot.refresh(running("Ready"))
    slot.refresh(running("Ready"))
    assert heard == [("model", running("Ready"))] and slot.status == running("Ready")


def test_closing_waits_for_loads_until_the_deadline_and_refuses_later_ones() -> None:
    slot, holder, _ = make_slot()
    part = Part()
    slot.finish(slot.begin(OFF), part, running("Ready"))
    release, ran = threading.Event(), []
    token = slot.begin(starting("Loading"))
    slot.run(token, lambda t: (ran.append(t), release.wait(5)))
    (loader,) = [thread for thread in threading.enumerate() if thread.name == "load model"]
    assert loader.daemon  # a load that never ends never keeps the app from quitting
    started = time.monotonic()
    assert slot.close(time.monotonic() + 0.05) is False  # the load is still running
    assert time.monotonic() - started < 1.0
    assert slot.closed and holder.current is None and slot.current is None and part.closed == 1
    assert ran == [token] and not slot.is_current(token)
    late = Part()
    assert slot.finish(token, late, running("Ready")) is False and late.closed == 1
    release.set()
    assert slot.close(time.monotonic() + 5) is True  # the load thread has ended


def test_closing_with_nothing_running_is_done_at_once() -> None:
    slot, _, _ = make_slot()
    done = threading.Event()
    slot.run(slot.begin(OFF), lambda t: done.set())
    assert done.wait(5)
    assert slot.close(time.monotonic() + 5) is True


def test_closing_a_part_that_hangs_gives_up_at_the_deadline() -> None:
    slot, _, _ = make_slot()
    release = threading.Event()
    slot.finish(slot.begin(OFF), Part(block=release), running("Ready"))
    started = time.monotonic()
    assert slot.close(time.monotonic() + 0.05) is False
    assert time.monotonic() - started < 1.0
    release.set()
