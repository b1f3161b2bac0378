"""Run leases: at most one open run per thread across every replica sharing a store.

A store that several gateway processes share (Redis) hands out a lease per
thread: a record with an expiry that the replica driving the thread's run renews
while the run streams. Each lease carries a fencing token, a number that grows
with every lease ever granted on the thread; the store's append refuses a batch
whose token is not the current lease's, so a replica that lost its lease (a long
pause, a partition) cannot write into the thread any more, whatever it believes
(``base.LeaseLost``).

A lease that expires was left by a replica that died: whoever touches the thread
next, or the periodic sweep, takes a lease of its own, stores the RUN_ERROR that
closes the dead run (fenced like every append, hence exactly once) and releases it.

A lease outlives the end it guards by a moment: a recovery's lease (``recovery=True``)
is given up once its RUN_ERROR is stored, a run's once its terminal event is. Clients
may see that end first and answer it with the next run, so such a lease is *closing*
(:attr:`Holder.closing`: a recovery's from the start, a run's from the append that
stores its terminal event, atomically) and a run start that meets it waits instead of
refusing (``server/leases.py``). A run start meeting any other lease gets a 409.

Each lease records the replica that took it (:attr:`RunLeases.replica_id`). A process
is a new replica unless it is given a stable id: then, at start, it takes over the
leases still recorded under that id (:meth:`RunLeases.take_over`) and closes their
runs at once, without waiting for them to lapse. Those leases cannot be live, as the
process holding them was this same replica before it restarted, as long as no two
live processes are ever given the same id (they would close each other's runs).

The embedded file store is one process by construction and has no leases
(``ThreadStore.leases`` is None); the process's own bookkeeping suffices there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Lease:
    thread_id: str
    run_id: str
    token: int  # the fencing token: larger than every token granted on the thread before
    recovery: bool = False  # taken to close a dead replica's run, not to drive a run


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a thread's live lease."""

    run_id: str
    closing: bool  # a recovery's lease, or a run's whose end is stored: given up in a moment


@dataclass(frozen=True, slots=True)
class Renewal:
    """What a renewal found: whether the lease is still ours, and a stop someone requested."""

    held: bool
    stop_message: str | None = None


class RunLeases(ABC):
    """The lease half of a shared store. ``ttl_s`` is how long a lease outlives its last renewal;
    ``replica_id`` is recorded with every lease this process takes."""

    ttl_s: float
    replica_id: str

    @abstractmethod
    async def acquire(self, thread_id: str, run_id: str, *, recovery: bool = False) -> Lease | None:
        """A new lease on the thread, or None while another one is live; ``recovery``
        marks it as taken to close a dead replica's run (closing from the start)."""

    @abstractmethod
    async def take_over(self, thread_id: str, run_id: str) -> Lease | None:
        """A recovery's lease on the thread, replacing a live one recorded under
        :attr:`replica_id` (left by this replica's previous process), whose token then no
        longer writes; None while another replica holds the thread's lease."""

    @abstractmethod
    async def held_by_this_replica(self) -> list[str]:
        """Threads whose live lease is recorded under :attr:`replica_id`."""

    @abstractmethod
    async def renew(self, lease: Lease) -> Renewal:
        """Extend the lease by ``ttl_s``; ``held`` is False when it expired or another took it."""

    async def reclaim(self, lease: Lease) -> bool:
        """Whether ``lease`` holds the thread again: renewed if it is still live, granted
        again under its own token if it lapsed (a store outage longer than the ttl) and no
        lease was granted on the thread since, so no other writer can have come between.
        A holder that finds its renewal failing for want of the store calls this once the
        store answers, before it appends what it held back; False: the thread was taken
        (a recovery, a run start), and the holder's appends are refused. Default: a renewal."""
        return (await self.renew(lease)).held

    @abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the lease up (a no-op when it is no longer ours)."""

    @abstractmethod
    async def holder(self, thread_id: str) -> Holder | None:
        """Who holds the live lease on the thread, or None."""

    @abstractmethod
    async def request_stop(self, thread_id: str, message: str, run_id: str | None = None) -> str | None:
        """Ask the replica holding the thread's lease to stop its run; returns that run's id, or None.
        With ``run_id``, only that run is asked (atomically): a lease held for another run
        is left alone, and its id returned."""

    @abstractmethod
    async def expired(self) -> list[str]:
        """Threads whose lease expired without a release: candidates for recovery."""

    @abstractmethod
    async def forget(self, thread_id: str) -> None:
        """Drop the thread from the expired candidates (once recovered, or found closed)."""
