"""The thread runtimes of one gateway process: one per thread, idle ones dropped beyond a cap.

A deleted thread's runtime is dropped at once (:meth:`ThreadRegistry.deleted`), whoever
deleted it: its streams end, and the next request on the id gets a new runtime, of a new
thread. The registry remembers the ids deleted lately (:data:`DELETED_REMEMBERED` of
them) so that reads of a deleted thread answer 404 ``thread_not_found`` while a thread
never written reads as empty (:meth:`ThreadRegistry.refuse_deleted`).

A runtime serves one incarnation of its thread (its epoch): requests get the runtime of
the incarnation the store holds (:meth:`ThreadRegistry.current`), so one kept from before
a delete this process did not see (another replica's) is dropped as deleted. While a
delete is under way (:meth:`ThreadRegistry.deleting`) no run is admitted on the thread.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agui_gateway.server.errors import ThreadNotFound
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.replay import ReplayBytes
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.store.base import ThreadDeleted, ThreadStore

# Deleted thread ids remembered per process (a few hundred KiB at most): beyond them, and
# on a replica that did not see the delete, a deleted thread reads as one never written.
DELETED_REMEMBERED = 4096


class ThreadRegistry:
    """The runtimes of the threads this process touches; idle ones beyond a cap are dropped."""

    def __init__(
        self,
        store: ThreadStore,
        metrics: GatewayMetrics,
        *,
        cached_threads: int = 256,
        cache_bytes: int = 256 * 1024 * 1024,
        recover_open_runs: bool = True,
        on_change: Callable[[str], None] | None = None,
        on_deleted: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self._on_change = on_change
        self._on_deleted = on_deleted  # the thread list's feed, told of every deletion
        self._deleted: OrderedDict[str, None] = OrderedDict()  # ids deleted lately, oldest first
        self._deleting: set[str] = set()  # ids being deleted now: no run is admitted on them
        self._metrics = metrics
        self._cap = cached_threads
        self._cap_bytes = cache_bytes
        self._recover = recover_open_runs
        self._runtimes: OrderedDict[str, ThreadRuntime] = OrderedDict()  # LRU, capped
        # The size of every runtime's replay state, kept by the states themselves.
        self.replay_bytes = ReplayBytes()
        # Every runtime still referenced anywhere (a stream, a run): one per thread,
        # even after the LRU let go of it, so two never serve the same thread.
        self._alive: weakref.WeakValueDictionary[str, ThreadRuntime] = weakref.WeakValueDictionary()

    def get(self, thread_id: str) -> ThreadRuntime:
        """The runtime of a (validated) thread id, created on first use."""
        runtime = self._runtimes.get(thread_id)
        if runtime is not None:
            self._runtimes.move_to_end(thread_id)
            return runtime
        runtime = self._alive.get(thread_id)
        if runtime is None:
            runtime = ThreadRuntime(
                thread_id,
                self.store,
                self._metrics,
                recover_open_runs=self._recover,
                on_change=self._on_change,
                on_deleted=self._deleted_elsewhere,
                replay_bytes=self.replay_bytes,
            )
            runtime.deleting = thread_id in self._deleting
            self._alive[thread_id] = runtime
        self._runtimes[thread_id] = runtime
        self._evict()
        return runtime

    @property
    def alive(self) -> int:
        """Runtimes alive in this process: those the cap keeps, and those a stream or run still
        holds. None of their parts refers back to the runtime (no reference cycle), so one
        dropped by the cap and held by nothing is freed at once, not at the next cyclic
        collection, which the gateway runs rarely (``cli/process.py``)."""
        return len(self._alive)

    def of_epoch(self, thread_id: str, epoch: str | None, *, writing: bool = False) -> ThreadRuntime:
        """:meth:`get`, for the incarnation ``epoch`` the store holds now (None: no records): a
        runtime of an older one (deleted elsewhere, e.g. on another replica, while nothing here
        followed it) is dropped as deleted first. Found so with no records left, the thread
        reads as deleted (:class:`ThreadDeleted`: 404 ``thread_not_found``), as after a delete
        this process saw, unless ``writing`` (a run: it creates the thread again)."""
        held = self.peek(thread_id)  # a runtime created now serves the store's incarnation
        if held is not None:
            served = held.epoch
            if served is not None and served != epoch:
                held.superseded()
                if epoch is None and not writing:
                    raise ThreadDeleted(f"thread {thread_id!r} was deleted")
        return self.get(thread_id)

    async def current(self, thread_id: str, *, writing: bool = False) -> ThreadRuntime:
        """:meth:`of_epoch` for the epoch the store holds now (one read of its head): the runtime
        a request on the thread is served from."""
        head = await self.store.head(thread_id)
        return self.of_epoch(thread_id, head.epoch if head is not None else None, writing=writing)

    def peek(self, thread_id: str) -> ThreadRuntime | None:
        return self._runtimes.get(thread_id) or self._alive.get(thread_id)

    def deleted(self, thread_id: str) -> None:
        """The thread was deleted from the store: its runtime's streams end and it is dropped."""
        runtime = self.peek(thread_id)
        if runtime is not None:
            runtime.deleted()
        self._forget(thread_id, runtime)

    @contextmanager
    def deleting(self, thread_id: str) -> Iterator[None]:
        """While the thread is being deleted, no run is admitted on it (its runtime, or one
        created meanwhile, refuses with ``RunInProgress``): between the deleter's look for a
        run in progress and the store's delete, a run starting would write the thread again."""
        self._deleting.add(thread_id)
        runtime = self.peek(thread_id)
        if runtime is not None:
            runtime.deleting = True
        try:
            yield
        finally:
            self._deleting.discard(thread_id)
            for held in (runtime, self.peek(thread_id)):
                if held is not None:
                    held.deleting = False

    def _deleted_elsewhere(self, runtime: ThreadRuntime) -> None:
        """A runtime's tail saw its thread deleted by another replica or the CLI."""
        self._forget(runtime.thread_id, runtime)

    def _forget(self, thread_id: str, runtime: ThreadRuntime | None) -> None:
        if runtime is not None and self._runtimes.get(thread_id) is runtime:
            del self._runtimes[thread_id]
        if runtime is not None and self._alive.get(thread_id) is runtime:
            del self._alive[thread_id]
        self._deleted[thread_id] = None
        self._deleted.move_to_end(thread_id)
        while len(self._deleted) > DELETED_REMEMBERED:
            self._deleted.popitem(last=False)
        if self._on_deleted is not None:
            self._on_deleted(thread_id)

    async def refuse_deleted(self, thread_id: str) -> None:
        """:class:`ThreadNotFound` when the thread was deleted (as far as this process knows)
        and holds no records since; a thread never written passes (it reads as empty)."""
        if thread_id in self._deleted:
            if await self.store.head(thread_id) is None:
                raise ThreadNotFound(f"thread {thread_id!r} was deleted")
            del self._deleted[thread_id]  # written again: a new thread

    def wake_subscribers(self) -> None:
        """Every open stream of this process looks at its thread again (see
        :meth:`ThreadRuntime.wake_subscribers`)."""
        for runtime in list(self._alive.values()):
            runtime.wake_subscribers()

    def active_runs(self) -> list[ThreadRuntime]:
        return [rt for rt in self._runtimes.values() if rt.running]

    def _evict(self) -> None:
        """Drop least recently used idle runtimes beyond the caps (count, and the bytes of every
        replay state alive: one the cap dropped but something still holds counts, as its
        memory is not freed). A runtime nothing else holds is freed as it is dropped, and its
        bytes leave the meter then (no reference cycle keeps it, see :attr:`alive`).

        An evicted thread's replay state is rebuilt from its checkpoint when needed.
        """
        for thread_id in list(self._runtimes):  # ids, not runtimes: the loop must not hold them
            if len(self._runtimes) <= self._cap and self.replay_bytes.total <= self._cap_bytes:
                break
            if self._runtimes[thread_id].idle:
                del self._runtimes[thread_id]
