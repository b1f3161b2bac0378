"""Retention: a background sweep deletes the threads idle for longer than ``retention``.

Bounded work per round: one page of at most :data:`PAGE` candidates
(``ThreadStore.idle_threads``, a cursor carried from round to round), each deleted with
``idle_before_ms`` so the store checks its last activity again in the same step as the
delete (a thread written since the page was read is kept). A thread with a run in
progress is never deleted (:meth:`ThreadDeleter.delete_idle`). A pass over the store
ends when a page has no ``next``; the sweep then rests for :func:`rest_s` before the
next pass, so a quiet store costs one page read per rest.

On Redis the thread's keys also expire by themselves (the store's ``retention_s``), so
memory stays bounded even while no gateway runs; the sweep is what takes the thread out
of the thread list and ends its streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agui_gateway.server.runtime.deletion import ThreadDeleter
from agui_gateway.store.base import StoreError, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.retention")

PAGE = 256  # candidates per round
MAX_REST_S = 60.0  # between passes, at most: a thread outlives its retention by about this


def rest_s(retention_s: float) -> float:
    """The pause between passes: a tenth of the retention (so a thread outlives it by at most
    about 10%), at most :data:`MAX_REST_S`."""
    return min(MAX_REST_S, retention_s / 10)


class RetentionSweep:
    def __init__(self, store: ThreadStore, deleter: ThreadDeleter, retention_s: float) -> None:
        self.store = store
        self.deleter = deleter
        self.retention_s = retention_s
        self.deleted = 0  # threads deleted so far
        self.passes = 0  # passes over the store completed so far
        self._cursor: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def round(self) -> bool:
        """One bounded round: one page of candidates, each deleted if still idle. Whether it
        completed a pass over the store."""
        cutoff = int(time.time() * 1000 - self.retention_s * 1000)
        page = await self.store.idle_threads(cutoff, limit=PAGE, cursor=self._cursor)
        for idle in page.threads:
            if await self.deleter.delete_idle(idle.thread_id, cutoff) == "deleted":
                self.deleted += 1
        self._cursor = page.next
        if page.next is None:
            self.passes += 1
            return True
        return False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                finished = await self.round()
            except StoreError as exc:  # the store is away: the next pass tries again
                log.warning("retention sweep: %s; retrying after a rest", exc)
                self._cursor = None
                finished = True
            except Exception:
                log.exception("retention sweep: a round failed; retrying after a rest")
                self._cursor = None
                finished = True
            # Between rounds of a pass, only yield: the page bounds a round's work.
            await asyncio.sleep(rest_s(self.retention_s) if finished else 0)
