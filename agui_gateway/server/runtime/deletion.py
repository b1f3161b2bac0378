"""Deleting a thread from a running gateway: ``DELETE /threads/{t}`` and the retention sweep.

The store deletes (``ThreadStore.delete_thread``: all or nothing; on Redis in one step
with the run lease, so a replica still driving a run gets ``LeaseLost``); this module
decides whether a thread may go and tells this process's parts that it went:

* While a delete is under way no run is admitted on the thread (:meth:`ThreadRegistry.deleting`):
  a run starting between the look for a run in progress and the store's delete would
  write the thread again (on the file store, which knows nothing of runs) or lose its
  first events.
* A run in progress is never deleted under its caller: a user's delete is refused
  (:class:`~agui_gateway.server.errors.ThreadRunning`, 409 ``run_in_progress``) unless
  it asks to stop the run first (then the run's end is stored, then the thread goes);
  a retention sweep skips the thread. This process's own run is checked here: the file
  store knows nothing of runs. Another replica's run shows as the lease the store keeps.
* After the delete, the thread's runtime is dropped (:meth:`ThreadRegistry.deleted`): its
  open streams end with a ``thread_deleted`` frame, the thread list's feed shows the
  deletion, and reads of the id answer 404 until it is written again.
"""

from __future__ import annotations

import logging

from agui_gateway.server.errors import ThreadNotFound, ThreadRunning
from agui_gateway.server.runtime.manager import RunManager
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.base import Deletion, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.deletion")

STOPPED_FOR_DELETE = "the thread was deleted during the run (DELETE ?stop=1)"


class ThreadDeleter:
    def __init__(self, store: ThreadStore, threads: ThreadRegistry, runs: RunManager) -> None:
        self.store = store
        self.threads = threads
        self.runs = runs

    async def delete(self, thread_id: str, *, stop: bool = False) -> None:
        """Delete the thread for a client: :class:`ThreadRunning` while a run is in progress
        (unless ``stop``: the run is stopped first), :class:`ThreadNotFound` when the store
        holds none of it."""
        with self.threads.deleting(thread_id):
            await self._delete(thread_id, stop)

    async def _delete(self, thread_id: str, stop: bool) -> None:
        runtime = self.threads.peek(thread_id)
        if runtime is not None and runtime.running:
            if not stop:
                raise ThreadRunning(_running(thread_id))
            await self.runs.stop(runtime, STOPPED_FOR_DELETE)
        outcome = await self.store.delete_thread(thread_id)
        if outcome == "leased":  # a run on another replica (or one of ours just starting)
            if not stop:
                raise ThreadRunning(_running(thread_id))
            await self.runs.stop(self.threads.get(thread_id), STOPPED_FOR_DELETE)
            # The run's end is stored; its replica gives the lease up a moment later. Deleted
            # under it: should that replica write again, its append fails (LeaseLost).
            outcome = await self.store.delete_thread(thread_id, even_if_leased=True)
        if outcome == "missing":
            raise ThreadNotFound(f"thread {thread_id!r} has no events")
        self.threads.deleted(thread_id)

    async def delete_idle(self, thread_id: str, idle_before_ms: int) -> Deletion:
        """Delete the thread for a retention sweep, when it had no activity since
        ``idle_before_ms`` (checked again by the store in the same step) and has no run in
        progress; what the store did ("active": kept, as a run of this process is)."""
        with self.threads.deleting(thread_id):
            runtime = self.threads.peek(thread_id)
            if runtime is not None and runtime.running:
                return "active"
            outcome = await self.store.delete_thread(thread_id, idle_before_ms=idle_before_ms)
            if outcome == "deleted":
                log.info("thread %s: deleted by retention (no activity since %d ms)", thread_id, idle_before_ms)
                self.threads.deleted(thread_id)
        return outcome


def _running(thread_id: str) -> str:
    return f"thread {thread_id!r} has a run in progress; stop it first, or delete with ?stop=1"
