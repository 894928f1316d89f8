"""The one reconnect policy, on an injected clock (no sleeping)."""
from __future__ import annotations

from avatarify.core.retry import Retry


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_due_at_once_then_after_each_failure_interval() -> None:
    clock = Clock()
    retry = Retry(2.0, clock)
    assert retry.due() and retry.wait_seconds == 0.0
    retry.failed()
    assert not retry.due() and retry.wait_seconds == 2.0 and retry.failures == 1
    clock.now += 1.5
    assert not retry.due() and retry.wait_seconds == 0.5
    clock.now += 0.5
    assert retry.due()
    retry.failed()
    retry.succeeded()
    assert retry.due() and retry.failures == 0


def test_due_at_once_even_when_the_clock_starts_at_zero() -> None:
    clock = Clock()
    clock.now = 0.0  # a monotonic clock may start anywhere
    retry = Retry(2.0, clock)
    assert retry.due()
    retry.failed()
    retry.failed()
    assert retry.failures == 2
    retry.succeeded()
    assert retry.due() and retry.wait_seconds == 0.0
