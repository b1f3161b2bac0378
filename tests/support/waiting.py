"""Waiting on a condition with a deadline, never for a fixed time.

Two forms over one deadline rule: :func:`wait_until` for plain threads (a test
server's start, a flag set by another thread) and :func:`wait_until_async` inside
an event loop (its condition may be a coroutine). Both poll ``condition`` until it
returns a truthy value, return that value, and fail the test with an
``AssertionError`` naming ``what`` once ``timeout`` seconds pass. The timeout only
stops a hang; nothing here measures how long anything took.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.005


@dataclass
class Deadline:
    """The shared rule: check first, give up only after ``timeout`` has passed, pause between checks."""

    timeout: float
    what: str
    interval: float = DEFAULT_INTERVAL
    _end: float = field(init=False)

    def __post_init__(self) -> None:
        self._end = time.monotonic() + self.timeout

    def pause_or_fail(self) -> float:
        """How long to pause before the next check; fails the test if the deadline has passed."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{self.what}: not met within {self.timeout} s")
        return min(self.interval, left)


def wait_until(
    condition: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    what: str = "condition",
    interval: float = DEFAULT_INTERVAL,
) -> Any:
    """Blocks until ``condition()`` is truthy and returns it; fails after ``timeout``."""
    deadline = Deadline(timeout, what, interval)
    while True:
        value = condition()
        if value:
            return value
        time.sleep(deadline.pause_or_fail())  # wait-ok: poll interval under a deadline


async def wait_until_async(
    condition: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    what: str = "condition",
    interval: float = DEFAULT_INTERVAL,
) -> Any:
    """Awaits until ``condition()`` (sync or async) is truthy and returns it; fails after ``timeout``."""
    deadline = Deadline(timeout, what, interval)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(deadline.pause_or_fail())  # wait-ok: poll interval under a deadline
