"""Which threads changed: the hub behind ``GET /threads/changes``.

The thread runtimes call :meth:`ThreadChanges.touch` when they store records or
a run starts or ends. Each feed subscriber holds the set of thread ids touched
since it last looked, so a burst of 36,000 deltas on one thread is one entry,
and a subscriber costs one set insertion per touch. The feed (see
:mod:`.ui.routes`) turns that set into one ``thread`` frame per changed thread
at most a few times a second, instead of every page polling every thread. A thread
deleted (:meth:`ThreadChanges.deleted`) is one ``thread_deleted`` frame, unless it has
records again by the time the feed looks.

The hub sees this process's writes only: with the Redis store and several
replicas, a thread written by another replica shows up here when this process
next touches it (or when a page reloads the list).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NamedTuple


class Changed(NamedTuple):
    """What a feed subscriber takes: the threads touched, and those deleted, since it last looked."""

    touched: set[str]
    deleted: set[str]


class ChangeSubscription:
    """The thread ids touched since the last :meth:`take`, and a wake-up signal."""

    def __init__(self) -> None:
        self._pending: set[str] = set()
        self._deleted: set[str] = set()
        self._signal = asyncio.Event()

    def add(self, thread_id: str) -> None:
        self._pending.add(thread_id)
        self._signal.set()

    def add_deleted(self, thread_id: str) -> None:
        self._deleted.add(thread_id)
        self._signal.set()

    async def wait(self, timeout: float) -> bool:
        """Wait until something is pending or ``timeout`` passes; whether something is."""
        if not self._pending and not self._deleted:
            with suppress(TimeoutError):  # a quiet feed sends a heartbeat instead
                await asyncio.wait_for(self._signal.wait(), timeout)
        return bool(self._pending or self._deleted)

    def take(self) -> Changed:
        taken = Changed(self._pending, self._deleted)
        self._pending, self._deleted = set(), set()
        self._signal.clear()
        return taken


class ThreadChanges:
    def __init__(self) -> None:
        self._subscriptions: set[ChangeSubscription] = set()

    def touch(self, thread_id: str) -> None:
        for subscription in self._subscriptions:
            subscription.add(thread_id)

    def deleted(self, thread_id: str) -> None:
        for subscription in self._subscriptions:
            subscription.add_deleted(thread_id)

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @contextmanager
    def subscribe(self) -> Iterator[ChangeSubscription]:
        subscription = ChangeSubscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
