"""The gateway's side of run leases (:mod:`agui_gateway.store.lease`): keeping and sweeping.

* :func:`keep_lease` runs beside a run for as long as it streams: it renews the
  lease well before it expires and, on the same round trip, picks up a stop that a
  client asked of another replica (``POST /threads/{thread}/stop`` lands on any
  replica; the one holding the lease ends the run). A renewal that finds the lease
  gone (this process paused longer than the lease lasts, or lost Redis that long)
  ends the run: its appends would be refused anyway.
* :class:`RecoverySweep` looks, every so often, for leases that expired without a
  release - a replica that died mid-run - and closes each such run with a stored
  RUN_ERROR (exactly once: the recovery itself holds the thread's lease), so the
  thread accepts runs again even when no client touches it.
* :func:`acquire_for_run` takes the lease for a run start. A recovery's lease, or a
  run's, is still held for a moment after the RUN_ERROR or the run's end is stored,
  and a client that sees that end may start the next run right then: a start that
  meets such a closing lease waits for it (this process's own recoveries through
  the thread's lock, any other by asking again, up to :data:`HANDOVER_WAIT_S`),
  while the lease of a live run refuses it at once.

Neither spins when Redis is unreachable: each waits its interval between tries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.store.base import StoreError
from agui_gateway.store.lease import Lease, RunLeases

log = logging.getLogger("agui_gateway.server.leases")

STOP_POLL_S = 0.25  # how soon a stop sent to another replica reaches the run, at most
# How long a run start waits, at most, for whoever holds the thread only to give it up: a
# recovery whose RUN_ERROR is stored, a run whose end is (a few round trips to Redis; one
# that lasts longer is in trouble, and the start gets its 409).
HANDOVER_WAIT_S = 5.0
HANDOVER_POLL_S = 0.05  # how often a start meeting a closing lease asks for it again


def renew_interval(ttl_s: float) -> float:
    """Renew at a third of the lease's life (two renewals may fail before it lapses),
    and often enough to pick up a remote stop within :data:`STOP_POLL_S`."""
    return min(ttl_s / 3, STOP_POLL_S)


async def keep_lease(
    leases: RunLeases,
    lease: Lease,
    on_stop: Callable[[str], None],
    on_lost: Callable[[str], None],
) -> None:
    """Renew ``lease`` until cancelled; report a requested stop once, and a lost lease."""
    stop_seen = failing = False
    interval = renew_interval(leases.ttl_s)
    while True:
        await asyncio.sleep(interval)
        try:
            if failing:  # the store was away: the lease may have lapsed meanwhile, ours to take back
                if not await leases.reclaim(lease):
                    on_lost(f"the run lease of thread {lease.thread_id!r} was taken during a store outage")
                    return
                failing = False
                continue
            renewal = await leases.renew(lease)
        except StoreError as exc:  # Redis away: try again; the lease lapses if it stays away
            if not failing:
                log.warning("thread %s: renewing the run lease failed (%s); retrying", lease.thread_id, exc)
            failing = True
            continue
        failing = False
        if not renewal.held:
            on_lost(f"the gateway replica lost the run lease of thread {lease.thread_id!r}")
            return
        if renewal.stop_message and not stop_seen:
            stop_seen = True
            on_stop(renewal.stop_message)


async def acquire_for_run(
    leases: RunLeases,
    thread_id: str,
    run_id: str,
    recovery_lock: asyncio.Lock,
    on_wait: Callable[[], None],
) -> Lease | None:
    """The thread's lease for a run, or None while a live run holds it.

    ``recovery_lock`` is held by this process's recoveries of the thread: a start
    waits for one in progress, and none starts while it asks. A closing lease (a
    recovery's, a run's whose end is stored: ``Holder.closing``) is asked for
    again until it is given up, for :data:`HANDOVER_WAIT_S` at most (then None, as
    for a live run). ``on_wait`` is called once if the start had to wait.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANDOVER_WAIT_S
    waited = False
    while True:
        if recovery_lock.locked() and not waited:
            waited = True
            on_wait()
        async with recovery_lock:
            lease = await leases.acquire(thread_id, run_id)
        if lease is not None:
            return lease
        holder = await leases.holder(thread_id)
        if holder is not None and not holder.closing:
            return None  # a live run: refused at once
        if loop.time() >= deadline:
            return None
        if holder is not None:  # None: given up since the acquire, ask again at once
            if not waited:
                waited = True
                on_wait()
            await asyncio.sleep(HANDOVER_POLL_S)


class RecoverySweep:
    """A periodic task closing the runs of dead replicas (see the module docstring)."""

    def __init__(self, leases: RunLeases, recover: Callable[[str], asyncio.Future[bool]], interval_s: float) -> None:
        self._leases = leases
        self._recover = recover
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="lease-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def sweep_once(self) -> int:
        """Recover every thread whose lease expired; returns how many runs were closed."""
        closed = 0
        for thread_id in await self._leases.expired():
            try:
                if await self._recover(thread_id):
                    closed += 1
                    log.warning("thread %s: closed a run whose replica stopped renewing its lease", thread_id)
            except StoreError as exc:
                log.warning("thread %s: recovering an abandoned run failed (%s); retrying later", thread_id, exc)
            except Exception:  # one thread's failure must not keep the others from recovery
                log.exception("thread %s: recovering an abandoned run failed; retrying later", thread_id)
        return closed

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sweep_once()
            except StoreError as exc:
                log.warning("the run lease sweep failed (%s); retrying in %ss", exc, self._interval_s)
            except Exception:  # a bug must not end the sweep for the life of the process
                log.exception("the run lease sweep failed; retrying in %ss", self._interval_s)


async def release_run_lease(leases: RunLeases | None, run: ActiveRun) -> None:
    """Stop renewing the run's lease and give it up (it lapses by itself if Redis is away)."""
    if run.keeper is not None:
        run.keeper.cancel()
        await asyncio.gather(run.keeper, return_exceptions=True)
    lease = run.lease
    run.lease = None
    if leases is not None and lease is not None:
        try:
            await leases.release(lease)
        except StoreError as exc:
            log.warning("thread %s: releasing the run lease failed (%s); it lapses by itself", run.thread_id, exc)
