"""The file store's open-run index: ``DATA/open-runs.json``, beside ``DATA/threads/``.

One small JSON file, ``{"format": 1, "threads": [...]}``, the threads whose log may end
in an open run (see :mod:`agui_gateway.store.open_runs`). It is replaced whole and
atomically (a temp file, fsynced, renamed over it, the directory fsynced), so a crash
leaves the old index or the new one, never a mix.

Crash safety, the one rule: the index never misses a thread with an open run. A log
write that holds a RUN_STARTED waits until the thread is in the index *on disk*
(:meth:`OpenRunIndex.add`), so whatever a crash keeps of that write, the index names
the thread. A run's end drops the thread lazily (:meth:`OpenRunIndex.discard`: written
with the next rewrite, not awaited): a crash before that leaves an extra entry, which
the next start finds closed and drops. Rewrites are group-committed: the adds and drops
that queue while one is written share the next one, so many runs starting at once cost
a few rewrites, not one each. The file holds only open runs: a few hundred bytes.

With ``fsync="never"`` nothing is fsynced (as for the logs): a machine crash may then
lose anything recent, a process crash nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from agui_gateway.store.base import StoreError, validate_thread_id
from agui_gateway.store.file.fs import atomic_write, temp_prefix

INDEX_NAME = "open-runs.json"
_TEMP_PREFIX = temp_prefix(INDEX_NAME)
log = logging.getLogger("agui_gateway.store.file")

RunIo = Callable[..., Awaitable[Any]]


class UnreadableIndex(ValueError):
    """The index file exists but is not an index this store wrote."""


def read_index(data_dir: Path) -> set[str] | None:
    """The threads the index names; None when there is no index file (blocking)."""
    path = data_dir / INDEX_NAME
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        doc = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise UnreadableIndex(f"{path}: not JSON ({exc})") from exc
    threads = doc.get("threads") if isinstance(doc, dict) and doc.get("format") == 1 else None
    if not isinstance(threads, list):
        raise UnreadableIndex(f"{path}: not an open-run index")
    found = set()
    for thread_id in threads:
        try:
            found.add(validate_thread_id(thread_id))
        except ValueError as exc:
            raise UnreadableIndex(f"{path}: bad thread id {thread_id!r}") from exc
    return found


def write_index(data_dir: Path, threads: Iterable[str], *, durable: bool) -> None:
    """Replace the index file atomically with ``threads`` (blocking)."""
    blob = orjson.dumps({"format": 1, "threads": sorted(threads)})
    atomic_write(data_dir / INDEX_NAME, (blob + b"\n",), durable=durable)


def remove_index_temp_files(data_dir: Path) -> None:
    """Delete the temp files of rewrites a crash interrupted (blocking)."""
    try:
        entries = list(os.scandir(data_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(_TEMP_PREFIX):
            Path(entry.path).unlink(missing_ok=True)


class OpenRunIndex:
    """The index in memory (:attr:`threads`, what the file will hold) and its rewrites."""

    def __init__(self, data_dir: Path, run_io: RunIo, *, durable: bool) -> None:
        self._data_dir = data_dir
        self._run_io = run_io
        self._durable = durable
        self.threads: set[str] = set()  # wanted: the file holds this once written
        self._on_disk: set[str] = set()  # surely named by the file on disk now
        self._writer: asyncio.Task[None] | None = None
        self._written: asyncio.Event = asyncio.Event()  # replaced after every rewrite
        self._failure: BaseException | None = None  # of the last rewrite, until one succeeds
        self._recent_adds: set[str] | None = None  # collected while a repair reads the logs
        self.ready = False  # read (or built) at the store's open: this object is the truth since

    def loaded(self, threads: set[str]) -> None:
        """Take the file's content as read at open."""
        self.threads = set(threads)
        self._on_disk = set(threads)
        self.ready = True

    async def flush_empty(self) -> None:
        """Write the index of a new data directory (no thread has a run yet)."""
        await self._run_io(write_index, self._data_dir, (), durable=self._durable)
        self._on_disk = set()
        self.ready = True

    def __contains__(self, thread_id: str) -> bool:
        return thread_id in self.threads

    async def add(self, thread_id: str) -> None:
        """Return once the file on disk names ``thread_id``; raise :class:`StoreError` when
        it cannot be written (then the caller must not write a RUN_STARTED)."""
        self.threads.add(thread_id)
        if self._recent_adds is not None:
            self._recent_adds.add(thread_id)
        while thread_id not in self._on_disk:
            if thread_id not in self.threads:  # dropped meanwhile (a repair): nothing to wait for
                return
            written = self._written
            self._kick()
            await written.wait()
            if thread_id not in self._on_disk and self._failure is not None:
                raise StoreError(f"writing the open-run index failed: {self._failure}")

    def note_open(self, thread_id: str) -> None:
        """Put back an entry found missing for a run already in its log (the index was lost or
        edited): written with the next rewrite, not awaited, as nothing waits on its order."""
        if thread_id not in self.threads:
            self.threads.add(thread_id)
            self._kick()

    def discard(self, thread_id: str) -> None:
        """Drop ``thread_id`` (its run ended); written with the next rewrite, not awaited."""
        if thread_id in self.threads:
            self.threads.discard(thread_id)
            self._kick()

    def start_repair(self) -> None:
        """Note the adds from now on: a repair's scan may not see their runs."""
        self._recent_adds = set()

    async def finish_repair(self, found_open: set[str]) -> tuple[set[str], set[str]]:
        """Make the index ``found_open`` plus the adds since :meth:`start_repair`, and write
        it; returns the threads (added, removed)."""
        recent, self._recent_adds = self._recent_adds or set(), None
        wanted = found_open | recent
        added, removed = wanted - self.threads, self.threads - wanted
        self.threads = wanted
        first = not self.ready
        self.ready = True
        if first and not wanted and not self._on_disk:
            # Built at an open for want of a file (or over an unreadable one), with no open run:
            # flush() sees nothing to change, but the file must be written, or every start
            # would scan every log again.
            await self.flush_empty()
        await self.flush()
        return added, removed

    def _kick(self) -> None:
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        try:
            while self.threads != self._on_disk:
                snapshot = set(self.threads)
                written, self._written = self._written, asyncio.Event()
                # While the rename is under way the file is the old index or the new one: only
                # what both name is surely on disk (an add meanwhile waits for the next rewrite).
                self._on_disk &= snapshot
                try:
                    await self._run_io(write_index, self._data_dir, snapshot, durable=self._durable)
                except OSError as exc:
                    self._failure = exc
                    log.error("writing the open-run index %s failed: %s", self._data_dir / INDEX_NAME, exc)
                    written.set()  # every waiter learns it now; the next add or drop tries again
                    return
                self._failure = None
                self._on_disk = snapshot
                written.set()
        finally:
            self._writer = None
            # A waiter that came during the last rewrite holds the next one's event: no next
            # rewrite is due (its change was written), so it is woken here to see that.
            last, self._written = self._written, asyncio.Event()
            last.set()

    async def flush(self) -> None:
        """Write what is pending; raise :class:`StoreError` when the file cannot be written."""
        while self.threads != self._on_disk:
            written = self._written
            self._kick()
            await written.wait()
            if self._failure is not None and self.threads != self._on_disk:
                raise StoreError(f"writing the open-run index failed: {self._failure}")
