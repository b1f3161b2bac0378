"""The embedded default store: one append-only JSONL log per thread.

Layout under ``data_dir``::

    threads/<thread_id>/log.jsonl              one record per line, seq dense from 1
    threads/<thread_id>/checkpoint.bin         see checkpoint_file
    threads/<thread_id>/log.jsonl.torn-<ms>    bytes cut off a torn tail, kept for forensics

Durability (``fsync=``): ``"always"`` (default) acknowledges an append only
after its bytes are fsynced, with group commit; ``"interval"`` fsyncs at most
every ``fsync_interval_ms``, so a machine crash can lose the last interval;
``"never"`` leaves flushing to the OS. See :mod:`.file_log` for the write path.

The open-run index (:mod:`.run_index`, ``DATA/open-runs.json``) names the threads
whose log may end in an open run, so a start-up finds them without opening every
thread; a data directory without one (written by an older version) gets it built by
one full scan at the first open.

Memory does not grow with the threads touched: the state of at most
``cached_threads`` opened threads is kept (least recently used first out, never one
with an append, a load or a waiter in flight), and the tails peeked for the thread
list at most ``cached_infos``; a thread dropped is scanned again on its next use.

Deletes and imports (:mod:`.lifecycle`: ``trash/``, ``incoming/``, the ``epoch`` file)
hold their thread alone: appends, reads and opens of it wait, and the thread's state
is dropped with it (whether or not the cap had dropped it already), its open-run index
entry too. A thread being opened is never the one the cap drops, so an append always
queues on the one log object the store holds for its thread.

Opening a thread (first use in this process) scans its log once in chunks: it
finds the last seq, builds the sparse ``seq -> offset`` index, counts malformed
middle lines, cuts off a torn tail (see :mod:`.jsonl_scan`) and removes
checkpoint temp files left by a crash. Reads seek through the index and never
go past the last committed record, so a reader never sees a partial line.

``read_event_json`` and ``read_lines`` do not decode: they cut the event (or take
the line) from the stored bytes (``records.slice_event``). That is exact for the
lines this store writes; the open-time scan also notes every line of another
shape (a hand edit), and only those are decoded.

One process owns a data directory: two gateways must not share one (use the
Redis store for replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import TypeVar

import orjson

from agui_gateway.store.base import (
    LEGACY_EPOCH,
    Checkpoint,
    Deletion,
    IdlePage,
    IdleThread,
    NewEvent,
    SeqConflict,
    StoredRecord,
    StoreError,
    ThreadDeleted,
    ThreadExists,
    ThreadHead,
    ThreadImport,
    ThreadInfo,
    ThreadStore,
    validate_thread_id,
)
from agui_gateway.store.file.checkpoint import (
    CorruptCheckpoint,
    read_checkpoint_and_epoch,
    remove_temp_files,
    write_checkpoint,
)
from agui_gateway.store.file.fs import LOG_NAME, ensure_dir, fsync_dir, thread_dir_names
from agui_gateway.store.file.importer import FileImport
from agui_gateway.store.file.lifecycle import (
    INCOMING_DIR,
    TRASH_DIR,
    empty_dir,
    log_mtime_ms,
    log_size,
    move_to_trash,
    read_epoch,
    remove_tree,
)
from agui_gateway.store.file.log import (
    AppendFds,
    FileStoreStats,
    FsyncPolicy,
    Misplaced,
    ThreadLog,
    WritePolicy,
)
from agui_gateway.store.file.run_index import (
    OpenRunIndex,
    UnreadableIndex,
    read_index,
    remove_index_temp_files,
)
from agui_gateway.store.file.scan import CHUNK_SIZE, LineSplitter, peek_tail, repair_torn, scan_log
from agui_gateway.store.open_runs import OpenRunRepair
from agui_gateway.store.records import batch_digest, decode_record, slice_event, stored_batch_digest

BIG_LINE = 1 << 20  # lines above this are handed out as views into the block read
CACHED_THREADS = 1024  # opened threads whose state is kept (a few hundred bytes each, plus the index)
CACHED_INFOS = 16384  # peeked thread tails kept for the thread list (~200 bytes each)
_REPAIR_BATCH = 64  # logs scanned per thread-pool call during a repair
logger = logging.getLogger("agui_gateway.store.file")

__all__ = ["FileStore", "FileStoreStats", "FsyncPolicy"]

_T = TypeVar("_T")


def _close_opened(opening: Future[int]) -> None:
    """Close the descriptor an open returned to a reader that had been cancelled meanwhile."""
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


class FileStore(ThreadStore):
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "always",
        fsync_interval_ms: int = 100,
        max_open_files: int = 256,
        io_threads: int = 4,
        cached_threads: int = CACHED_THREADS,
        cached_infos: int = CACHED_INFOS,
    ) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be 'always', 'interval' or 'never', not {fsync!r}")
        if fsync_interval_ms <= 0:
            raise ValueError("fsync_interval_ms must be positive")
        if cached_threads < 1 or cached_infos < 0:
            raise ValueError("cached_threads must be positive and cached_infos not negative")
        self.data_dir = Path(data_dir)
        self.threads_dir = self.data_dir / "threads"
        self.trash_dir = self.data_dir / TRASH_DIR
        self.incoming_dir = self.data_dir / INCOMING_DIR
        self.fsync: FsyncPolicy = fsync
        self.stats = FileStoreStats()
        self._policy = WritePolicy(fsync, fsync_interval_ms / 1000, self._io, self.stats)
        self._io_threads = io_threads
        self._executor: ThreadPoolExecutor | None = None
        self._fds = AppendFds(max_open_files)
        self._logs: OrderedDict[str, ThreadLog] = OrderedDict()  # least recently used first
        self._peeked: OrderedDict[str, ThreadInfo] = OrderedDict()  # info of threads not opened yet
        self._cached_threads = cached_threads
        self._cached_infos = cached_infos
        # Opened threads dropped (the cap) or deleted so far: a peek started before one may be
        # stale, so it is used once, not cached.
        self._forgotten = 0
        self._open_runs = OpenRunIndex(self.data_dir, self._io, durable=self._policy.durable)
        # Threads being deleted or replaced: everything else on them waits for the event.
        self._exclusive: dict[str, asyncio.Event] = {}
        self._sweep_names: list[str] | None = None  # the thread folders of the retention pass under way
        self._closed = False

    @property
    def malformed_lines(self) -> int:
        """Malformed middle lines skipped in the threads opened so far."""
        return self.stats.malformed_lines

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        self._closed = False
        await self._io(ensure_dir, self.threads_dir, self._policy.durable)
        # Finish the deletes a crash interrupted, drop the imports it cut short.
        self.stats.interrupted_deletes += await self._io(empty_dir, self.trash_dir)
        await self._io(empty_dir, self.incoming_dir)
        if self._open_runs.ready:  # opened before: what this object holds is newer than the file
            return
        await self._io(remove_index_temp_files, self.data_dir)
        try:
            found = await self._io(read_index, self.data_dir)
        except UnreadableIndex as exc:
            logger.warning("%s; rebuilding the open-run index from every log", exc)
            found = None
        if found is not None:
            self._open_runs.loaded(found)
            return
        # No index: a new data directory, or one written before there was an index.
        if await self._io(thread_dir_names, self.threads_dir):
            logger.warning("%s has no open-run index; building it from every log (once)", self.data_dir)
            await self.repair_open_runs()
        else:
            await self._open_runs.flush_empty()

    async def close(self) -> None:
        """Finish queued appends, fsync what is pending, release descriptors and threads."""
        self._closed = True
        for log in list(self._logs.values()):
            await log.flush()
        try:
            await self._open_runs.flush()
        except StoreError as exc:  # the entries it could not drop are extra ones: harmless
            logger.warning("%s", exc)
        self._fds.close_all()
        self._logs.clear()
        self._peeked.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _io(self, fn: Callable[..., _T], *args: object, **kwargs: object) -> _T:
        """Run a blocking call in the store's own thread pool."""
        return await asyncio.wrap_future(self._submit(fn, *args, **kwargs))

    def _submit(self, fn: Callable[..., _T], *args: object, **kwargs: object) -> Future[_T]:
        """Start a blocking call in the store's own thread pool; its future, which goes on
        in its thread when the coroutine awaiting it is cancelled (see :meth:`_line_chunks`)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._io_threads, thread_name_prefix="filestore")
        return self._executor.submit(fn, *args, **kwargs)

    # -- thread state --------------------------------------------------------------------

    async def _thread(self, thread_id: str) -> ThreadLog:
        while (busy := self._exclusive.get(thread_id)) is not None:  # a delete or import in progress
            await busy.wait()
        return await self._open_thread(thread_id)

    async def _open_thread(self, thread_id: str) -> ThreadLog:
        log = self._logs.get(thread_id)
        if log is None:
            directory = self.threads_dir / thread_id
            log = self._logs[thread_id] = ThreadLog(thread_id, directory, self._policy, self._fds, self._open_runs)
            self._forget_beyond_cap(keep=thread_id)
        else:
            self._logs.move_to_end(thread_id)
        if not log.loaded:
            async with log.load_lock:
                if not log.loaded:
                    await self._load(log)
        return log

    async def _existing_thread(self, thread_id: str) -> ThreadLog | None:
        """Like :meth:`_thread`, but None (and nothing cached) when the thread has no folder.

        Read-only calls go through here so that asking about made-up thread ids
        does not grow the in-memory registry.
        """
        if thread_id not in self._logs and not await self._io((self.threads_dir / thread_id).is_dir):
            # An index entry whose run's first write a crash cut, or whose delete a crash cut
            # before the index was written; not one an import holding the thread has just
            # made, before its folder is renamed into place.
            if thread_id not in self._logs and thread_id not in self._exclusive:
                self._open_runs.discard(thread_id)
            return None
        return await self._thread(thread_id)

    def _forget_beyond_cap(self, keep: str) -> None:
        """Drop the least recently used opened threads beyond the cap that nothing holds,
        never ``keep`` (the one being opened: dropped, its caller would hold a second log of
        the thread, one :meth:`append` never queues on)."""
        excess = len(self._logs) - self._cached_threads
        if excess <= 0:
            return
        for thread_id, log in list(self._logs.items()):
            if excess <= 0:
                break
            if thread_id != keep and log.release_if_unused():
                del self._logs[thread_id]
                self._forgotten += 1
                excess -= 1

    async def _load(self, log: ThreadLog) -> None:
        self.stats.temp_files_removed += await self._io(remove_temp_files, log.directory)
        scan = await self._io(scan_log, log.log_path)
        if scan.torn_bytes:
            side = log.directory / f"{LOG_NAME}.torn-{_now_ms()}"
            self.stats.torn_bytes += await self._io(repair_torn, log.log_path, scan.good_end, side)
            self.stats.torn_repairs += 1
        self.stats.malformed_lines += scan.malformed
        if scan.run_open:  # an entry the index lost (it never loses one itself): put it back
            self._open_runs.note_open(log.thread_id)
        epoch = await self._io(read_epoch, log.directory)
        log.epoch = epoch if epoch is not None or scan.last_seq == 0 else LEGACY_EPOCH
        log.adopt(scan)
        if not scan.run_open:  # an extra entry (a run's end stored, a crash before the drop)
            self._open_runs.discard(log.thread_id)
        self._peeked.pop(log.thread_id, None)

    # -- appends and reads -----------------------------------------------------------------

    async def append(
        self,
        thread_id: str,
        events: Sequence[NewEvent],
        *,
        fence: int | None = None,
        expect_seq: int | None = None,
    ) -> list[StoredRecord]:
        validate_thread_id(thread_id)  # fence: no leases here (one writer process)
        if expect_seq is not None and (type(expect_seq) is not int or expect_seq < 1):
            raise ValueError("expect_seq must be a positive int")
        if self._closed:
            raise StoreError("the store is closed")
        if not events:
            return []
        while True:
            log = await self._thread(thread_id)
            # Opening may have waited on I/O: queue only on the thread's current log, and not
            # once a delete or import holds it (it then waits, and the batch goes to the next
            # incarnation). Queuing is synchronous, so a delete that starts later flushes it.
            if self._logs.get(thread_id) is log and thread_id not in self._exclusive:
                break
        try:
            return await log.append(events, _now_ms(), expect_seq)
        except Misplaced as exc:
            assert expect_seq is not None
            return await self._stored_already(thread_id, events, expect_seq, exc.last_seq)

    async def _stored_already(
        self, thread_id: str, events: Sequence[NewEvent], expect_seq: int, last_seq: int
    ) -> list[StoredRecord]:
        """The records of this batch if the log holds it from ``expect_seq`` on; else SeqConflict.

        A batch stored before the thread was deleted is not there any more: its repeat gets
        SeqConflict (the log is empty, or another incarnation's), and creates nothing."""
        end = expect_seq + len(events) - 1
        if last_seq >= end:
            stored = []
            async with aclosing(self._read(thread_id, expect_seq - 1)) as records:
                async for record in records:
                    stored.append(record)
                    if record.seq >= end:
                        break
            if [r.seq for r in stored] == list(range(expect_seq, end + 1)) and stored_batch_digest(
                stored
            ) == batch_digest(events):
                return stored
        raise SeqConflict(
            f"append to {thread_id!r} expected to start at seq {expect_seq}, but the log ends at {last_seq} "
            "without this batch there",
            last_seq,
        )

    async def _read(self, thread_id: str, after: int) -> AsyncGenerator[StoredRecord, None]:
        async with aclosing(self._line_chunks(thread_id, after)) as chunks:
            async for _, block, rule in chunks:
                for line in block.split(b"\n")[:-1]:
                    record = decode_record(line)
                    if record is not None and rule.accept(record.seq) and record.seq > after:
                        yield record

    async def _read_lines(self, thread_id: str, after: int) -> AsyncGenerator[bytes, None]:
        """The stored bytes of each record, as they are on disk."""
        async with aclosing(self._line_chunks(thread_id, after)) as chunks:
            async for start, block, rule in chunks:
                for seq, line, _ in rule.records(start, block):
                    if seq > after:
                        yield b"".join((line, b"\n"))

    async def _read_event_json(
        self, thread_id: str, after: int
    ) -> AsyncGenerator[tuple[int, bytes | memoryview], None]:
        """Each event's bytes cut from its stored line; only the scan's odd lines are decoded."""
        async with aclosing(self._line_chunks(thread_id, after)) as chunks:
            async for start, block, rule in chunks:
                for seq, _, event_json in rule.records(start, block):
                    if seq > after:
                        yield seq, event_json

    async def _line_chunks(
        self, thread_id: str, after: int
    ) -> AsyncGenerator[tuple[int, bytes | bytearray, _LineRule], None]:
        """From a line at or before the first record with seq > after up to the end:
        the complete lines of each 64 KiB chunk as one block, with its offset."""
        log = await self._existing_thread(thread_id)
        if log is None or log.last_seq <= after:
            return
        offset = log.index.locate(after)
        rule = _LineRule(log.odd_offsets, offset)
        # A reader is cancelled at any await (its client went away), but a call already
        # running in the thread pool goes on: the descriptor an open returns after its
        # reader was cancelled must still be closed, and the descriptor must not be closed
        # under a pread that may not have started yet (its number could be reused meanwhile).
        opening = self._submit(os.open, log.log_path, os.O_RDONLY)
        try:
            fd = await asyncio.wrap_future(opening)
        except FileNotFoundError:
            if log.deleted:  # deleted since this read began: it reads as unknown
                return
            raise
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise
        reading: Future[bytes] | None = None
        try:
            splitter = LineSplitter(offset)
            while offset < log.end:  # log.end moves on as appends commit
                reading = self._submit(os.pread, fd, min(CHUNK_SIZE, log.end - offset), offset)
                chunk = await asyncio.wrap_future(reading)
                if not chunk:
                    break
                offset += len(chunk)
                start = splitter.line_start
                block = splitter.block(chunk)
                del chunk  # the block holds its lines: a reader keeps one copy, not two
                if block:
                    yield start, block, rule
        finally:
            if reading is None or reading.done():
                os.close(fd)
            else:  # runs in the pool's thread once the pread has returned (or at once if it never starts)
                reading.add_done_callback(lambda _: os.close(fd))

    async def last_seq(self, thread_id: str) -> int:
        validate_thread_id(thread_id)
        log = await self._existing_thread(thread_id)
        return 0 if log is None else log.last_seq

    async def head(self, thread_id: str) -> ThreadHead | None:
        validate_thread_id(thread_id)
        log = await self._existing_thread(thread_id)
        if log is None or log.last_seq == 0 or log.epoch is None:
            return None
        return ThreadHead(log.epoch, log.last_seq)

    async def wait_for(self, thread_id: str, after: int, timeout: float, *, epoch: str | None = None) -> int:
        validate_thread_id(thread_id)
        log = await self._thread(thread_id)
        log.waiters += 1  # pinned: an append must wake this very object
        try:
            async with asyncio.timeout(timeout):
                while log.last_seq <= after and not _gone(log, epoch):
                    await log.changed.wait()
        except TimeoutError:
            pass
        finally:
            log.waiters -= 1
        if _gone(log, epoch):
            raise ThreadDeleted(f"thread {thread_id!r} was deleted")
        return log.last_seq

    # -- the open-run index -------------------------------------------------------------------

    async def open_run_threads(self) -> list[str]:
        return sorted(self._open_runs.threads)

    async def repair_open_runs(self) -> OpenRunRepair:
        names = await self._io(thread_dir_names, self.threads_dir)
        self._open_runs.start_repair()
        found: set[str] = set()
        for start in range(0, len(names), _REPAIR_BATCH):
            batch = names[start : start + _REPAIR_BATCH]
            unopened = [n for n in batch if not self._loaded(n)]
            scans = await self._io(lambda u=unopened: [scan_log(self.threads_dir / n / LOG_NAME).run_open for n in u])
            found.update(n for n, is_open in zip(unopened, scans, strict=True) if is_open)
            found.update(n for n in batch if self._loaded(n) and self._logs[n].run_open)
        # The threads this process holds: what it knows is the truth, appends in flight included
        # (no await from here to the index's update).
        found.update(n for n, log in self._logs.items() if log.loaded and (log.run_open or log.writing))
        added, removed = await self._open_runs.finish_repair(found)
        return OpenRunRepair(
            len(names), tuple(sorted(self._open_runs.threads)), tuple(sorted(added)), tuple(sorted(removed))
        )

    # -- listing ------------------------------------------------------------------------------

    async def list_threads(self) -> list[ThreadInfo]:
        names = await self._io(thread_dir_names, self.threads_dir)
        # The tails of threads never looked at are peeked in one pool call: one call
        # per thread made a first listing of 5,000 threads wait on 5,000 round trips.
        unseen = [n for n in names if n not in self._peeked and not self._loaded(n)]
        forgotten = self._forgotten
        tails = await self._io(lambda: [peek_tail(self.threads_dir / n / LOG_NAME) for n in unseen])
        peeked: dict[str, ThreadInfo] = {}  # this listing's own: the cache may hold fewer
        for thread_id, tail in zip(unseen, tails, strict=True):
            if tail is not None and tail.last_seq > 0 and not self._loaded(thread_id) and forgotten == self._forgotten:
                peeked[thread_id] = ThreadInfo(thread_id, tail.last_seq, tail.size, tail.last_ts)
                self._remember_peek(peeked[thread_id])
        infos = []
        for thread_id in names:
            info = peeked.get(thread_id) or await self.thread_info(thread_id)  # but for ambiguous tails
            if info is not None:
                infos.append(info)
        return infos

    def _remember_peek(self, info: ThreadInfo) -> None:
        self._peeked[info.thread_id] = info
        self._peeked.move_to_end(info.thread_id)
        while len(self._peeked) > self._cached_infos:
            self._peeked.popitem(last=False)

    def _loaded(self, thread_id: str) -> bool:
        log = self._logs.get(thread_id)
        return log is not None and log.loaded

    async def thread_info(self, thread_id: str) -> ThreadInfo | None:
        """From memory once the thread is open; before that from the log's last chunk."""
        validate_thread_id(thread_id)
        log = self._logs.get(thread_id)
        if log is not None and log.loaded:
            return log.info()
        if thread_id in self._peeked:
            return self._peeked[thread_id]
        forgotten = self._forgotten
        tail = await self._io(peek_tail, self.threads_dir / thread_id / LOG_NAME)
        if tail is None:  # an ambiguous tail: a full open decides (and repairs)
            return (await self._thread(thread_id)).info()
        if tail.last_seq == 0:
            return None
        info = ThreadInfo(thread_id, tail.last_seq, tail.size, tail.last_ts)
        if not self._loaded(thread_id) and forgotten == self._forgotten:  # else it may be stale
            self._remember_peek(info)
        return info

    # -- checkpoints ----------------------------------------------------------------------------

    async def load_checkpoint(self, thread_id: str) -> Checkpoint | None:
        validate_thread_id(thread_id)
        log = await self._existing_thread(thread_id)  # opening removes crashed temp files
        if log is None:
            return None
        try:
            found = await self._io(read_checkpoint_and_epoch, log.directory)
        except CorruptCheckpoint:
            self.stats.corrupt_checkpoints += 1
            return None
        if found is None:
            return None
        checkpoint, epoch = found
        # One of another incarnation of the thread (saved after a delete) is not this one's.
        if (epoch if epoch is not None else LEGACY_EPOCH) != (log.epoch if log.epoch is not None else LEGACY_EPOCH):
            return None
        return checkpoint

    async def save_checkpoint(self, thread_id: str, checkpoint: Checkpoint) -> None:
        validate_thread_id(thread_id)
        if type(checkpoint.seq) is not int or checkpoint.seq < 0:
            raise ValueError("checkpoint seq must be a non-negative int")
        if not isinstance(checkpoint.data, bytes):
            raise TypeError("checkpoint data must be bytes")
        log = await self._thread(thread_id)
        durable = self._policy.durable
        async with log.checkpoint_lock:
            if log.deleted or log.last_seq == 0 or checkpoint.seq > log.last_seq:
                return  # it covers no records of this thread (deleted since, or another incarnation)
            try:
                await self._io(ensure_dir, log.directory, durable)
                await self._io(write_checkpoint, log.directory, checkpoint, durable=durable, epoch=log.epoch)
            except OSError as exc:  # disk full, I/O error: the old checkpoint is left as it was
                raise StoreError(f"writing the checkpoint of {thread_id!r} failed: {exc}") from exc

    # -- the data lifecycle ----------------------------------------------------------------------

    async def delete_thread(
        self, thread_id: str, *, idle_before_ms: int | None = None, even_if_leased: bool = False
    ) -> Deletion:
        validate_thread_id(thread_id)  # even_if_leased: no leases here (one writer process)
        if self._closed:
            raise StoreError("the store is closed")
        async with self._exclusively(thread_id):
            if idle_before_ms is not None:
                last = await self._last_activity(thread_id)
                if last is not None and last >= idle_before_ms:
                    return "active"
            return "deleted" if await self._remove(thread_id) else "missing"

    async def _last_activity(self, thread_id: str) -> int | None:
        log = self._logs.get(thread_id)
        if log is not None and log.loaded:
            return log.last_ts
        tail = await self._io(peek_tail, self.threads_dir / thread_id / LOG_NAME)
        if tail is None:  # ambiguous: a full open decides
            return (await self._open_thread(thread_id)).last_ts
        return tail.last_ts

    async def _remove(self, thread_id: str, *, keep_index_entry: bool = False) -> bool:
        """Rename the thread's folder into the trash, forget it (its open-run index entry
        too), then remove its files.

        Whether it had records. The caller holds the thread exclusively; ``keep_index_entry``:
        an import puts a thread with an open run in its place."""
        log = self._logs.get(thread_id)
        async with contextlib.AsyncExitStack() as stack:
            if log is not None:
                await log.flush()  # appends queued before the delete finish first (then go with it)
                await stack.enter_async_context(log.checkpoint_lock)  # no checkpoint write mid-rename
            directory = self.threads_dir / thread_id
            had_records = await self._io(log_size, directory, LOG_NAME) > 0
            try:
                moved = await self._io(move_to_trash, directory, self.trash_dir, self._policy.durable)
            except OSError as exc:
                raise StoreError(f"deleting {thread_id!r} failed: {exc}") from exc
            if log is not None:
                log.deleted = True  # before the lock goes: a checkpoint save waiting on it drops its write
        self._forgotten += 1
        self._peeked.pop(thread_id, None)
        # Its log is gone, so its entry goes (lazily, as after a run's end: a crash before the
        # index is written leaves an extra entry, dropped when the thread is next looked at).
        if not keep_index_entry:
            self._open_runs.discard(thread_id)
        if log is not None:
            if self._logs.get(thread_id) is log:  # the cap may have dropped it meanwhile
                del self._logs[thread_id]
            log.close_fd()
            log.notify()  # its waiters learn it now
        if moved is not None:
            await self._io(remove_tree, moved)
        return had_records

    @contextlib.asynccontextmanager
    async def _exclusively(self, thread_id: str) -> AsyncIterator[None]:
        """Hold the thread alone: appends, reads and opens of it wait until the end."""
        while (busy := self._exclusive.get(thread_id)) is not None:
            await busy.wait()
        done = self._exclusive[thread_id] = asyncio.Event()
        try:
            yield
        finally:
            del self._exclusive[thread_id]
            done.set()

    async def idle_threads(self, before_ms: int, *, limit: int = 256, cursor: str | None = None) -> IdlePage:
        """Threads in name order after ``cursor``: one directory listing per pass, then at
        most ``limit`` threads looked at (memory, or one ``stat`` each; a tail read for those
        the ``stat`` says are idle). A thread not opened is found once its log's mtime is
        before the cutoff: its last write, which follows its last record's ``ts`` by the
        write's latency (an import sets it to that ``ts``)."""
        if limit < 1:
            raise ValueError("limit must be positive")
        # One directory listing per pass, not per round: a pass over 100,000 threads in
        # rounds of 256 would otherwise list the directory 400 times. Threads created
        # during a pass wait for the next one; deleted ones are skipped by their stat.
        names = self._sweep_names
        if cursor is None or names is None:
            names = self._sweep_names = await self._io(thread_dir_names, self.threads_dir)
        start = bisect_right(names, cursor) if cursor is not None else 0
        page = names[start : start + limit]
        following = page[-1] if start + limit < len(names) else None
        if following is None:
            self._sweep_names = None
        idle = []
        unloaded = []
        for thread_id in page:
            log = self._logs.get(thread_id)
            if log is not None and log.loaded:
                if log.last_seq > 0 and log.last_ts is not None and log.last_ts < before_ms:
                    idle.append(IdleThread(thread_id, log.last_ts))
            else:
                unloaded.append(thread_id)
        idle.extend(await self._io(self._idle_on_disk, unloaded, before_ms))
        idle.sort(key=lambda t: t.thread_id)
        return IdlePage(idle, following)

    def _idle_on_disk(self, thread_ids: list[str], before_ms: int) -> list[IdleThread]:
        found = []
        for thread_id in thread_ids:
            path = self.threads_dir / thread_id / LOG_NAME
            mtime = log_mtime_ms(path)
            if mtime is None or mtime >= before_ms:  # written since: its last record may be recent
                continue
            tail = peek_tail(path)
            if tail is not None and tail.last_seq == 0:
                continue
            found.append(IdleThread(thread_id, tail.last_ts if tail is not None and tail.last_ts else mtime))
        return found

    def import_thread(self, thread_id: str, epoch: str) -> ThreadImport:
        if self._closed:
            raise StoreError("the store is closed")
        return FileImport(thread_id, epoch, self.incoming_dir, self._io, self._install)

    async def _install(self, thread_id: str, staged: Path, replace: bool, open_run: bool) -> None:
        """Rename an import's finished folder into place (see :class:`FileImport`); a thread
        whose log ends in an open run is in the open-run index on disk before it is."""
        async with self._exclusively(thread_id):
            directory = self.threads_dir / thread_id
            log = self._logs.get(thread_id)
            exists = (log is not None and log.loaded and log.last_seq > 0) or await self._io(
                log_size, directory, LOG_NAME
            ) > 0
            if exists and not replace:
                raise ThreadExists(f"thread {thread_id!r} exists (import it with replace to overwrite it)")
            if open_run:  # its run is closed by the next recovery, like one a crash left open
                await self._open_runs.add(thread_id)  # fails before the old thread goes
            # The old thread, or a folder holding only a checkpoint.
            await self._remove(thread_id, keep_index_entry=open_run)
            try:
                await self._io(os.rename, staged, directory)
                if self._policy.durable:
                    await self._io(fsync_dir, self.threads_dir)
            except OSError as exc:
                self._open_runs.discard(thread_id)  # no thread came of it
                raise StoreError(f"importing {thread_id!r} failed: {exc}") from exc


def _gone(log: ThreadLog, epoch: str | None) -> bool:
    """Whether a waiter following ``epoch`` lost its thread (deleted, or another incarnation)."""
    return epoch is not None and (log.deleted or log.epoch != epoch)


class _LineRule:
    """Which lines a reader takes, by the rule of ``scan_log``: a valid record whose seq
    exceeds the previous one taken (bad lines in the middle were counted at open).

    Only the lines the open-time scan marked odd (and any line :func:`slice_event`
    does not take) are decoded; every other line was checked at open, or written by
    this store since, so cutting it is exact.
    """

    def __init__(self, odd_offsets: array[int], offset: int) -> None:
        self.previous = 0
        self._odd = odd_offsets
        self._next = bisect_left(odd_offsets, offset)  # the first odd line not passed yet

    def accept(self, seq: int) -> bool:
        """Whether a valid record with this seq, the next in file order, is taken."""
        if seq <= self.previous:
            return False
        self.previous = seq
        return True

    def records(
        self, start: int, block: bytes | bytearray
    ) -> Iterator[tuple[int, bytes | memoryview, bytes | memoryview]]:
        """``(seq, line, event JSON)`` of the records in ``block`` (lines from offset ``start``).

        A generator, so that a reader holds one block, not also every event cut from it.
        A line above :data:`BIG_LINE` comes as views into the block, not copies: a reader
        stalled in the middle of a multi-megabyte event holds that event's bytes once.
        """
        odd = self._odd
        next_odd = odd[self._next] if self._next < len(odd) else -1
        view = memoryview(block)
        position, end = 0, len(block)
        while position < end:
            newline = block.find(b"\n", position)
            if newline < 0:
                break
            line: bytes | memoryview = (
                view[position:newline] if newline - position > BIG_LINE else bytes(view[position:newline])
            )
            position = newline + 1
            if start == next_odd:
                self._next += 1
                next_odd = odd[self._next] if self._next < len(odd) else -1
                cut = None
            else:
                cut = slice_event(line)
            start += len(line) + 1
            if cut is not None:
                self.previous = cut[0]
                yield cut[0], line, cut[1]
                continue
            record = decode_record(line)
            if record is not None and self.accept(record.seq):
                yield record.seq, line, orjson.dumps(record.served)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
