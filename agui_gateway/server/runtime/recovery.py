"""Closing runs a crash left open: one thread's recovery.

A run the log shows open that no task of this process owns was cut off by a crash:
the thread's first open stores a RUN_ERROR (source "gateway") for it, so the thread
accepts runs again and every client sees the run end. On a store shared by replicas
(leases), only a run whose lease lapsed is cut off, and the recovery holds the
thread's lease while it stores the RUN_ERROR (exactly once); that lease is marked as a
recovery's, and a run start waits for it rather than refusing. A replica restarted
under its stable id takes over the leases its previous process left instead of
waiting for them to lapse (``take_over``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agui_gateway.protocol.builders import run_error_event
from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.replay import ReplayState
from agui_gateway.store.base import NewEvent, StoredRecord
from agui_gateway.store.lease import RunLeases

log = logging.getLogger("agui_gateway.server.runtime.recovery")

CODE_GATEWAY_RESTARTED = "gateway_restarted"
RECOVERY_RUN_ID = "gateway-recovery"  # the run id a recovery's lease names


class Recovery:
    def __init__(
        self,
        replay: ReplayState,
        leases: RunLeases | None,
        metrics: GatewayMetrics,
        on_stored: Callable[[list[StoredRecord]], None],
    ) -> None:
        self._replay = replay
        self._leases = leases
        self._metrics = metrics
        self._on_stored = on_stored  # the thread is told of the RUN_ERROR like of any append
        # Held by this process's recoveries of the thread (one at a time), and by a run
        # start while it asks for the lease, so a start never meets a recovery of ours.
        self.lock = asyncio.Lock()

    async def settle(self, compactor: SnapshotCompactor, runs_here: Callable[[], bool]) -> None:
        """A built compactor, before it is published: a run it shows open that is not
        ``runs_here()`` is closed (on a store shared by replicas only if no live replica holds
        its lease: only a lease tells)."""
        if compactor.run_open and not runs_here():
            if self._leases is None:
                await self.close_crashed_run(compactor)
            else:
                await self.close_leased(compactor, runs_here)

    async def close_abandoned(
        self, compactor: SnapshotCompactor, runs_here: Callable[[], bool], fence: int | None = None
    ) -> bool:
        """Close a run the log shows open that no live replica drives (the sweep, a new run).

        ``fence``: the token of a lease the caller holds on the thread (a run being
        opened); without one, a lease is taken for the recovery. Returns whether a
        RUN_ERROR was stored.
        """
        if self._leases is not None and fence is None:
            return await self.close_leased(compactor, runs_here)
        await self._replay.catch_up(compactor)
        if not compactor.run_open:
            return False
        await self.close_crashed_run(compactor, fence)
        return True

    async def close_crashed_run(self, compactor: SnapshotCompactor, fence: int | None = None) -> None:
        """Store the RUN_ERROR that ends the run ``compactor`` shows open."""
        run_id = compactor.open_run_id
        event = run_error_event(
            "the gateway stopped before this run ended (crash or restart); the run was cut off",
            CODE_GATEWAY_RESTARTED,
        )
        records = await self._replay.append([NewEvent(event, run_id or None, "gateway")], compactor, fence)
        self._on_stored(records)
        self._metrics.recovered_runs.inc()
        log.warning("thread %s: closed run %s left open by a crash", self._replay.thread_id, run_id)

    async def close_leased(
        self, compactor: SnapshotCompactor, runs_here: Callable[[], bool], take_over: bool = False
    ) -> bool:
        """Close a run whose replica died, holding the thread's lease while doing it.

        No lease granted: a live replica runs the thread, nothing to do. Granted: no one
        else can append now, so the run still open in the log (read again under the lease)
        gets exactly one RUN_ERROR, unless ``runs_here()`` (a run of this process holds the
        thread). ``take_over``: the lease replaces one recorded under this replica's id (its
        previous process's). Returns whether a RUN_ERROR was stored.
        """
        leases = self._leases
        assert leases is not None
        thread_id = self._replay.thread_id
        async with self.lock:
            if take_over:
                lease = await leases.take_over(thread_id, RECOVERY_RUN_ID)
            else:
                lease = await leases.acquire(thread_id, RECOVERY_RUN_ID, recovery=True)
            if lease is None:
                return False
            try:
                async with self._replay.lock:
                    await self._replay.catch_up_locked(compactor)
                closed = compactor.run_open and not runs_here()
                if closed:
                    await self.close_crashed_run(compactor, lease.token)
                await leases.forget(thread_id)
                return closed
            finally:
                await leases.release(lease)
