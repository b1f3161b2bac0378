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

Drain (SIGTERM, see ``cli/drain.py``): :meth:`Readiness.drain` refuses new runs (503
with Retry-After: a load balancer or client retries on another replica), lets the runs
in progress go on to their own end for at most the drain timeout, and ends every
watcher's stream once the thread it follows has no run open (at once for an idle
thread): a client resumes by ``Last-Event-ID`` on any replica. A run still going at the
deadline, or when the drain is cut short (a second signal), is stopped: its stored
RUN_ERROR (``gateway_shutdown``) reaches its caller and watchers before their streams end.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum

from agui_gateway.server.runtime.manager import RunManager
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.base import StoreError, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.readiness")

STARTUP_RETRY_S = (0.5, 2.0, 5.0)  # pauses before asking an unreachable store for the index again


class Phase(Enum):
    STARTING = "starting"  # the runs a crash left open are being closed
    SERVING = "serving"
    DRAINING = "draining"  # shutting down: runs in progress finish, no new ones start


class Readiness:
    def __init__(
        self, store: ThreadStore, threads: ThreadRegistry, runs: RunManager, *, recover_open_runs: bool
    ) -> None:
        self._store = store
        self._threads = threads
        self._runs = runs
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
    def draining(self) -> bool:
        return self.phase is Phase.DRAINING

    async def drain(self, timeout: float, cut_short: asyncio.Event) -> bool:
        """Drain (see the module docstring); returns whether every run ended by itself."""
        self.phase = Phase.DRAINING
        self._runs.refuse_new_runs()
        self._threads.wake_subscribers()  # watchers of idle threads end now
        log.info("draining: runs in progress may go on for up to %ss", timeout)
        ended = await self._runs.wait_for_runs(timeout, cut_short)
        if not ended:
            log.warning("draining: stopping the runs still in progress")
            await self._runs.shutdown()
        self._threads.wake_subscribers()  # and the watchers of the threads those runs ran on
        return ended

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
