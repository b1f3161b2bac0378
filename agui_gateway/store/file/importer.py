"""Importing one thread into the file store: staged under ``incoming/``, then renamed in.

The records are written exactly as given (their seq, ts and bytes), with the epoch and
the checkpoint, into a private folder; :meth:`FileImport.commit` hands the finished
folder to the store, which renames it to ``threads/<thread_id>`` in one step (see
:mod:`.lifecycle`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from agui_gateway.store.base import Checkpoint, StoreError, ThreadImport, validate_epoch, validate_thread_id
from agui_gateway.store.file.checkpoint import write_checkpoint
from agui_gateway.store.file.fs import LOG_NAME, ensure_dir, fsync_dir, write_all
from agui_gateway.store.file.lifecycle import private_name, remove_tree, write_epoch
from agui_gateway.store.records import ImportedLines

RunIo = Callable[..., Awaitable[Any]]
# Installs a finished folder as the thread (the store's part: exclusivity, replace, caches,
# the open-run index): thread id, folder, replace, whether its log ends in an open run.
Install = Callable[[str, Path, bool, bool], Awaitable[None]]


class FileImport(ThreadImport):
    def __init__(self, thread_id: str, epoch: str, incoming: Path, run_io: RunIo, install: Install) -> None:
        self.thread_id = validate_thread_id(thread_id)
        self.epoch = validate_epoch(epoch)
        self._lines = ImportedLines(thread_id)
        self._staging = incoming / private_name(thread_id)
        self._incoming = incoming
        self._io = run_io
        self._install = install
        self._fd: int | None = None
        self._done = False

    async def add(self, lines: Sequence[bytes]) -> None:
        checked = self._lines.check(lines)
        if self._done:
            raise StoreError("this import is already committed or aborted")
        if self._fd is None:
            self._fd = await self._io(self._create)
        data = b"".join(line + b"\n" for line in checked)
        try:
            await self._io(write_all, self._fd, data)
        except OSError as exc:
            await self.abort()
            raise StoreError(f"importing {self.thread_id!r} failed: {exc}") from exc

    def _create(self) -> int:
        ensure_dir(self._incoming, True)
        ensure_dir(self._staging, True)
        return os.open(self._staging / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    async def commit(self, checkpoint: Checkpoint | None = None, *, replace: bool = False) -> None:
        self._lines.check_end(checkpoint)
        if self._done or self._fd is None:
            raise StoreError("this import is already committed or aborted")
        try:
            await self._io(self._finish, checkpoint)
        except OSError as exc:
            await self.abort()
            raise StoreError(f"importing {self.thread_id!r} failed: {exc}") from exc
        try:
            await self._install(self.thread_id, self._staging, replace, self._lines.open_run)
        finally:
            self._done = True
            await self._io(remove_tree, self._staging)  # gone already once installed

    def _finish(self, checkpoint: Checkpoint | None) -> None:
        assert self._fd is not None
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        write_epoch(self._staging, self.epoch, True)
        if checkpoint is not None:
            write_checkpoint(self._staging, checkpoint, durable=True, epoch=self.epoch)
        # The log's mtime says when its last record was stored (see lifecycle.log_mtime_ms).
        last_ns = (self._lines.last_ts or 0) * 1_000_000
        os.utime(self._staging / LOG_NAME, ns=(last_ns, last_ns))
        fsync_dir(self._staging)

    async def abort(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        self._done = True
        await self._io(remove_tree, self._staging)
