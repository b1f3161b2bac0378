"""The one interface every thread store implements.

The gateway talks to storage only through :class:`ThreadStore`. A store keeps,
per thread, an append-only log of :class:`StoredRecord` (dense ``seq`` from 1)
and at most one checkpoint (an opaque blob plus the ``seq`` it covers). The
shared contract tests in ``tests/store/contract.py`` are written against this
class, so every backend (the embedded JSONL file store, a Redis Streams store)
passes the very same tests.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agui_gateway.protocol.lineage import served_event
from agui_gateway.protocol.types import Event
from agui_gateway.store.lease import RunLeases
from agui_gateway.store.open_runs import OpenRunRepair

Source = Literal["agent", "gateway"]
ANNOTATION_KEY = "gateway"  # the envelope field of a record's annotation

_THREAD_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

# The epoch of a thread stored before epochs existed (no epoch saved with it). Fixed, so
# that every replica and every restart agrees on it; a thread created since has another
# (see new_epoch), so a legacy thread deleted and created again changes epoch too.
LEGACY_EPOCH = "0"
_EPOCH = re.compile(r"[0-9a-z]{1,32}")

# What delete_thread found: the thread was deleted; there was none; it was kept because a
# run lease is live on it (a run in progress on some replica); it was kept because it had
# activity at or after ``idle_before_ms``.
Deletion = Literal["deleted", "missing", "leased", "active"]


class InvalidThreadId(ValueError):
    """A thread id that is not letters, digits, '-', '_', '.' (1..128), or is '.'/'..'."""


class UnencodableEvent(ValueError):
    """An event that cannot be stored as JSON (non-string keys, huge ints, objects)."""


class StoreError(RuntimeError):
    """A backend failure (I/O error, store closed) that the caller cannot fix by changing input."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or cannot serve now (a Redis restart or failover): the same
    call may succeed later. A run rides such an outage out (``server/runtime/outage_buffer.py``);
    other failures (a full disk) are not waited for."""


class LeaseLost(StoreError):
    """An append under a fencing token that no longer holds the thread's run lease."""


class SeqConflict(StoreError):
    """An append with an expected first seq (``expect_seq``) that does not fit the log: the
    thread's last seq is neither just before it nor the end of that very batch, stored
    already. Nothing of the batch was stored; ``last_seq`` is the thread's last seq."""

    def __init__(self, message: str, last_seq: int) -> None:
        super().__init__(message)
        self.last_seq = last_seq


class ThreadDeleted(StoreError):
    """The thread a caller waits on was deleted (or deleted and created again) meanwhile.

    Raised by :meth:`ThreadStore.wait_for` for a caller that named the epoch it follows.
    """


class ThreadExists(ValueError):
    """An import of a thread the store already holds, without ``replace``."""


class InvalidRecord(ValueError):
    """An imported line that is not a stored record, or whose seq is not the next one."""


def validate_thread_id(thread_id: str) -> str:
    if not isinstance(thread_id, str) or not _THREAD_ID.fullmatch(thread_id) or thread_id in (".", ".."):
        raise InvalidThreadId(
            "thread id must be 1-128 characters of letters, digits, '-', '_' or '.', and not '.' or '..'"
        )
    return thread_id


def new_epoch() -> str:
    """A fresh epoch: 16 lowercase hex digits, random (so unique per creation of a thread).

    Epochs are 1-32 characters of ``[0-9a-z]``: no ``:``, ``.``, ``-`` or ``/``, so an id such
    as ``EPOCH:SEQ`` splits without ambiguity and needs no escaping in a header or a URL.
    """
    return secrets.token_hex(8)


def validate_epoch(epoch: str) -> str:
    if not isinstance(epoch, str) or not _EPOCH.fullmatch(epoch):
        raise ValueError(f"an epoch is 1-32 characters of 0-9 and a-z, not {epoch!r}")
    return epoch


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: the event exactly as received, plus its envelope fields."""

    event: Event
    run_id: str | None
    source: Source = "agent"
    annotation: dict[str, Any] | None = None  # the envelope's ``gateway`` field (see protocol.lineage)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One stored line: ``{"seq", "runId", "ts", "source", ["gateway",] "event"}``.

    ``annotation`` (the ``gateway`` field, on a run's first RUN_STARTED only) is what
    the gateway adds to the stored event when serving it; the event itself is
    exactly as received.
    """

    seq: int
    run_id: str | None
    ts: int  # epoch milliseconds when the gateway received the event
    source: Source
    event: Event
    annotation: dict[str, Any] | None = None

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "runId": self.run_id, "ts": self.ts, "source": self.source}
        if self.annotation is not None:
            out[ANNOTATION_KEY] = self.annotation
        out["event"] = self.event
        return out

    @property
    def served(self) -> Event:
        """The event as every stream serves it (the annotation merged in)."""
        return served_event(self.event, self.annotation)


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    thread_id: str
    events: int  # == last seq
    bytes: int  # bytes of the stored log
    last_activity_ms: int | None


@dataclass(frozen=True, slots=True)
class ThreadHead:
    """Which incarnation of a thread this is, and how far its log goes, read together.

    ``epoch`` is created with the thread (its first append) and changes only when the
    thread is deleted and created again; :data:`LEGACY_EPOCH` for a thread stored before
    epochs existed. A position ``seq`` means something only together with the epoch.
    """

    epoch: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class IdleThread:
    """A thread whose last activity (its last record's ``ts``) is older than a sweep's cutoff."""

    thread_id: str
    last_activity_ms: int


@dataclass(frozen=True, slots=True)
class IdlePage:
    """One bounded page of a retention sweep: candidates, and where the next page starts
    (``next`` None: this pass over the store is complete)."""

    threads: list[IdleThread]
    next: str | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """An opaque, atomically replaced blob that covers the log up to ``seq``."""

    seq: int
    data: bytes


class ThreadStore(ABC):
    """Append-only per-thread event logs with checkpoints and change notification.

    Every method taking a ``thread_id`` validates it first and raises
    :class:`InvalidThreadId` (the ``read*`` methods at the latest on the first
    iteration) without touching storage.
    """

    # Run leases for stores that several gateway processes share (see :mod:`.lease`);
    # None: one process owns the store and its own bookkeeping suffices.
    leases: RunLeases | None = None

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (create directories, connect). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    async def ping(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`StoreError` when the backend cannot serve now (for health checks)."""

    @abstractmethod
    async def append(
        self,
        thread_id: str,
        events: Sequence[NewEvent],
        *,
        fence: int | None = None,
        expect_seq: int | None = None,
    ) -> list[StoredRecord]:
        """Append events atomically in order; assign dense seqs; return the stored records.

        ``expect_seq``: the seq the caller expects the batch's first event to get (the
        last seq it knows, plus one). It makes the append safe to repeat after a failure
        whose outcome is unknown (a reply lost with the connection, a store that went
        away mid-call): when the thread's last seq is ``expect_seq - 1`` the batch is
        appended; when this very batch (same events, run ids, sources and annotations)
        is stored already from ``expect_seq`` on, nothing is appended and the records as
        first stored are returned (their ``ts`` is the first attempt's); otherwise
        :class:`SeqConflict` is raised and nothing is stored. Repeating a batch is
        checked before the fence: a batch stored under a lease since lost still reads
        as stored.

        ``fence`` is the fencing token of a run lease (:attr:`leases`): a store with
        leases refuses the batch (``LeaseLost``) unless that token holds the thread's
        lease, and refuses a batch without a token while anyone holds one. A store
        without leases has a single writer process and ignores it.

        Appends to one thread are serialised. When this returns, the records are
        durable according to the store's durability policy and visible to readers,
        and waiters in :meth:`wait_for` are woken. An empty batch returns ``[]``.
        Raises :class:`UnencodableEvent` when an event cannot be stored as JSON and
        :class:`StoreError` on a backend failure; then nothing of the batch is stored.
        """

    # The public reads validate the thread id eagerly, then hand over to the
    # backend's generator (``_read*``), which runs only when iterated.

    def read(self, thread_id: str, after: int = 0) -> AsyncGenerator[StoredRecord, None]:
        """Yield the records with ``seq > after`` in order, in bounded memory.

        The iteration ends at the last record stored when it reaches the end;
        it does not wait for new ones. Unknown threads yield nothing.
        """
        validate_thread_id(thread_id)
        return self._read(thread_id, after)

    def read_lines(self, thread_id: str, after: int = 0) -> AsyncGenerator[bytes, None]:
        """Yield stored records as JSON lines (with trailing newline), ``seq > after``."""
        validate_thread_id(thread_id)
        return self._read_lines(thread_id, after)

    def read_event_json(self, thread_id: str, after: int = 0) -> AsyncGenerator[tuple[int, bytes | memoryview], None]:
        """Yield ``(seq, event_json)`` for the records with ``seq > after``, like :meth:`read`.

        ``event_json`` is the stored event's JSON: one line (no CR or LF) that
        decodes to exactly the event :meth:`read` yields for that seq. It is for
        readers that pass events on as they are (SSE subscribers): a backend that
        keeps each record as a JSON line returns the event's bytes cut from it,
        without decoding (a big one as a view into what it read, to hold it once).
        """
        validate_thread_id(thread_id)
        return self._read_event_json(thread_id, after)

    @abstractmethod
    def _read(self, thread_id: str, after: int) -> AsyncGenerator[StoredRecord, None]:
        """:meth:`read` for a validated thread id."""

    def _read_lines(self, thread_id: str, after: int) -> AsyncGenerator[bytes, None]:
        """:meth:`read_lines` for a validated thread id. Default: serialise :meth:`_read`;
        a backend that keeps JSON lines may stream its bytes."""
        return _serialise(self._read(thread_id, after))

    def _read_event_json(self, thread_id: str, after: int) -> AsyncGenerator[tuple[int, bytes | memoryview], None]:
        """:meth:`read_event_json` for a validated thread id. Default: serialise :meth:`_read`."""
        return _event_json(self._read(thread_id, after))

    @abstractmethod
    async def last_seq(self, thread_id: str) -> int:
        """The highest stored seq of the thread (0 if it has none)."""

    @abstractmethod
    async def head(self, thread_id: str) -> ThreadHead | None:
        """The thread's epoch and last seq, read together (one round trip); None when it
        has no records. Streams read it once to learn the epoch; the hot path keeps
        :meth:`last_seq`."""

    @abstractmethod
    async def wait_for(self, thread_id: str, after: int, timeout: float, *, epoch: str | None = None) -> int:
        """Wait until the thread has a record with ``seq > after`` or ``timeout`` passes.

        Returns the thread's latest seq (which may still be ``<= after`` on timeout).
        With ``epoch`` (the epoch the caller follows, from :meth:`head`), raises
        :class:`ThreadDeleted` as soon as the thread no longer has that epoch: deleted,
        by this process or (on a shared store) any other, or deleted and created again.
        """

    # -- the data lifecycle ----------------------------------------------------------------

    @abstractmethod
    async def delete_thread(
        self, thread_id: str, *, idle_before_ms: int | None = None, even_if_leased: bool = False
    ) -> Deletion:
        """Remove the thread: its log, checkpoint, epoch, lease, open-run index entry and
        every other key or file.

        All or nothing: a crash in the middle leaves the whole thread or nothing readable.
        Afterwards the thread reads as unknown, waiters that named its epoch get
        :class:`ThreadDeleted`, and an append creates it again under a new epoch.
        On a store with leases the lease and fencing token go in the same atomic step, so
        a replica still driving a run on the thread gets :class:`LeaseLost` from its next
        append; unless ``even_if_leased``, a thread with a live lease is kept ("leased").
        With ``idle_before_ms`` (a retention sweep), a thread whose last activity is at or
        after it is kept ("active"), checked in the same step as the delete. A store
        without leases knows nothing of runs: its one gateway process must not delete a
        thread it is running (its next append would create the thread again).
        """

    @abstractmethod
    async def idle_threads(self, before_ms: int, *, limit: int = 256, cursor: str | None = None) -> IdlePage:
        """One page (at most ``limit``) of threads whose last activity is before ``before_ms``.

        Bounded work per call: a retention sweep calls it once per round, passing the
        page's ``next`` back as ``cursor`` (None starts a new pass), and deletes each
        candidate with ``delete_thread(t, idle_before_ms=before_ms)``, which checks
        again. A pass may miss a thread that turned idle during it; the next pass finds it.
        """

    @abstractmethod
    def import_thread(self, thread_id: str, epoch: str) -> ThreadImport:
        """Write a thread's stored records exactly as given (seq, ts and bytes kept) under
        ``epoch``; nothing is visible until :meth:`ThreadImport.commit`, which also enters
        the thread in the open-run index when its log ends in an open run."""

    @abstractmethod
    async def open_run_threads(self) -> list[str]:
        """The threads whose log may end in an open run (a RUN_STARTED without a terminal
        event after it), sorted, from the store's open-run index (:mod:`.open_runs`).

        Costs O(open runs), whatever the number of threads: what a start-up needs to
        close the runs a crash left open. Every thread with an open run is listed; a
        listed thread may have none (its end stored while the index was being updated):
        opening it finds nothing to close, and the entry is dropped.
        """

    @abstractmethod
    async def repair_open_runs(self) -> OpenRunRepair:
        """Rebuild the open-run index from the logs themselves: every thread is read.

        The explicit full scan (``agui-gateway recover --full``), for an index that was
        lost or damaged outside the store's control; appends may go on meanwhile.
        """

    @abstractmethod
    async def list_threads(self) -> list[ThreadInfo]:
        """Every thread that has at least one record."""

    @abstractmethod
    async def thread_info(self, thread_id: str) -> ThreadInfo | None:
        """Info for one thread, or None when it has no records."""

    @abstractmethod
    async def load_checkpoint(self, thread_id: str) -> Checkpoint | None:
        """The thread's last saved checkpoint, or None."""

    @abstractmethod
    async def save_checkpoint(self, thread_id: str, checkpoint: Checkpoint) -> None:
        """Replace the thread's checkpoint atomically (never a torn checkpoint).

        A checkpoint covers records: one of a thread without records, or whose ``seq`` is
        beyond the thread's last record, is dropped (a runtime saving after its thread was
        deleted, or deleted and created again, must not leave a key or file of it behind).
        """


class ThreadImport(ABC):
    """One thread being imported (see :meth:`ThreadStore.import_thread`).

    :meth:`add` takes stored lines (JSON records, without their newline) in seq order,
    dense from 1, and raises :class:`InvalidRecord` for any other; they are staged where
    no reader sees them. :meth:`commit` makes the thread visible at once, whole, with its
    epoch and checkpoint; it raises :class:`ThreadExists` when the store already has the
    thread, unless ``replace`` (then the old thread is deleted in the same step, or just
    before it on a store that cannot do both at once). :meth:`abort` drops what was staged.
    """

    @abstractmethod
    async def add(self, lines: Sequence[bytes]) -> None: ...

    @abstractmethod
    async def commit(self, checkpoint: Checkpoint | None = None, *, replace: bool = False) -> None: ...

    @abstractmethod
    async def abort(self) -> None: ...


async def _serialise(records: AsyncIterator[StoredRecord]) -> AsyncGenerator[bytes, None]:
    import orjson

    async for record in records:
        yield orjson.dumps(record.to_json_dict()) + b"\n"


async def _event_json(records: AsyncIterator[StoredRecord]) -> AsyncGenerator[tuple[int, bytes], None]:
    import orjson

    try:
        async for record in records:
            yield record.seq, orjson.dumps(record.served)
    finally:  # a reader that stops early closes the read it stands on at once
        aclose = getattr(records, "aclose", None)
        if aclose is not None:
            await aclose()
