"""The life of one gateway process: start-up recovery, readiness, drain.

Start-up costs O(runs a crash left open), whatever the number of threads: the store
keeps an index of the threads whose log may end in an open run
(``ThreadStore.open_run_threads``), and only those are opened, in the background,
while the process already answers. Each is made ready like on any first read
(:meth:`~.thread.ThreadRuntime.ready`: its replay state built, its crashed run closed
with a stored RUN_ERROR), so a request that reads one of them meanwhile waits for that
thread's recovery only, through the same single flight, and never sees the run open.

:class:`Readiness` also answers whether the process is ready to be sent work
(``GET /readyz``): start-up recovery done and not draining. Whether the store answers
is asked of the store itself by the readiness probe.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.base import StoreError, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.readiness")

STARTUP_RETRY_S = (0.5, 2.0, 5.0)  # pauses before asking an unreachable store for the index again


class Phase(Enum):
    STARTING = "starting"  # the runs a crash left open are being closed
    SERVING = "serving"
    DRAINING = "draining"  # shutting down: runs in progress finish, no new ones start


class Readiness:
    def __init__(self, store: ThreadStore, threads: ThreadRegistry, *, recover_open_runs: bool) -> None:
        self._store = store
        self._threads = threads
        self._recover = recover_open_runs
        self.phase = Phase.STARTING if recover_open_runs else Phase.SERVING
        self.recovering: set[str] = set()  # threads of the index not made ready yet
        self.recovered = 0  # threads of the index made ready so far
        self.failed = 0  # threads whose recovery failed (retried by their next read)
        self.started = asyncio.Event()  # start-up recovery has finished
        if not recover_open_runs:
            self.started.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin start-up recovery in the background (the process answers meanwhile)."""
        if self._recover and self._task is None:
            self._task = asyncio.create_task(self._recover_open_runs(), name="startup-recovery")

    async def _recover_open_runs(self) -> None:
        try:
            thread_ids = await self._open_run_threads()
            self.recovering = set(thread_ids)
            if thread_ids:
                log.info("start-up: %d thread(s) may have a run a crash left open; closing them", len(thread_ids))
            for thread_id in thread_ids:
                try:
                    await self._threads.get(thread_id).ready()
                    self.recovered += 1
                except Exception:  # one thread's failure must not keep the others from recovery
                    self.failed += 1
                    log.exception("start-up: recovering thread %s failed; its next read tries again", thread_id)
                finally:
                    self.recovering.discard(thread_id)
        finally:
            if self.phase is Phase.STARTING:
                self.phase = Phase.SERVING
            self.started.set()

    async def _open_run_threads(self) -> list[str]:
        attempt = 0
        while True:
            try:
                return await self._store.open_run_threads()
            except StoreError as exc:
                delay = STARTUP_RETRY_S[min(attempt, len(STARTUP_RETRY_S) - 1)]
                attempt += 1
                log.warning("start-up: reading the open-run index failed (%s); retrying in %ss", exc, delay)
                await asyncio.sleep(delay)

    @property
    def not_ready_reason(self) -> str | None:
        """Why the process should not be sent work now (None: it should)."""
        if self.phase is Phase.DRAINING:
            return "draining: the gateway is shutting down"
        if not self.started.is_set():
            return f"starting: closing the runs a crash left open ({len(self.recovering)} thread(s) to go)"
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
