"""Background tasks of the window: results arrive on the GUI thread, a closed window drops them quietly."""
from __future__ import annotations

import threading

import pytest
from PyQt5 import sip

from avatarify.core.errors import AvatarifyError
from avatarify.gui.tasks import Task, describe_error

pytestmark = pytest.mark.gui


def test_a_result_and_an_error_reach_their_signals(qtbot) -> None:
    good = Task(lambda: 42)
    with qtbot.waitSignal(good.succeeded, timeout=10_000) as result, qtbot.waitSignal(good.done, timeout=10_000):
        good.start()
    assert result.args == [42]

    def fail():
        raise AvatarifyError("No camera at /dev/video7.")

    bad = Task(fail)
    with qtbot.waitSignal(bad.failed, timeout=10_000) as message:
        bad.start()
    assert message.args == ["No camera at /dev/video7."]


def test_a_task_outliving_its_window_drops_its_result_without_an_error(qtbot, monkeypatch) -> None:
    thread_errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda hook: thread_errors.append(hook.exc_value))
    release = threading.Event()
    task = Task(release.wait)
    task.start()
    thread = task._thread
    sip.delete(task)  # what closing the window does to a child task
    release.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert thread_errors == []


def test_errors_read_as_one_line() -> None:
    assert describe_error(ValueError("Bad crop.")) == "Bad crop."
    assert describe_error(OSError("disk full\nmore detail")) == "OSError: disk full"
    assert describe_error(KeyError()) == "KeyError"
