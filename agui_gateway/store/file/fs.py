"""Small blocking file-system helpers for the file store (run in its thread pool)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from agui_gateway.store.base import validate_thread_id

LOG_NAME = "log.jsonl"

# fdatasync suffices for appends (it flushes the size change); macOS lacks it.
fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_and_sync(fd: int, data: bytes) -> None:
    write_all(fd, data)
    fdatasync(fd)


def truncate(fd: int, size: int, durable: bool) -> None:
    os.ftruncate(fd, size)
    if durable:
        os.fsync(fd)


def temp_prefix(name: str) -> str:
    """The prefix of the temp files :func:`atomic_write` makes for ``name`` (what a clean-up
    after a crash looks for)."""
    return name + ".tmp-"


def atomic_write(path: Path, parts: Iterable[bytes], *, durable: bool) -> None:
    """Replace ``path`` with ``parts`` all at once: a temp file beside it, renamed over it, so a
    reader or a crash sees the old file or the new one, never a torn one."""
    temp = path.with_name(f"{temp_prefix(path.name)}{uuid.uuid4().hex}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            for part in parts:
                write_all(fd, part)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(directory: Path, durable: bool) -> None:
    """Create a directory (and parents); fsync each new entry's parent to survive a crash."""
    if directory.is_dir():
        return
    ensure_dir(directory.parent, durable)
    try:
        directory.mkdir()
    except FileExistsError:
        return
    if durable:
        fsync_dir(directory.parent)


def open_for_append(directory: Path, durable: bool) -> int:
    """Open (creating if needed, durably) ``directory/log.jsonl`` for O_APPEND writes."""
    ensure_dir(directory, durable)
    path = directory / LOG_NAME
    existed = path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if durable and not existed:
        fsync_dir(directory)
    return fd


def thread_dir_names(threads_dir: Path) -> list[str]:
    """Names of the folders under ``threads_dir`` that are valid thread ids, sorted."""
    try:
        entries = list(os.scandir(threads_dir))
    except FileNotFoundError:
        return []
    names = []
    for entry in entries:
        try:
            validate_thread_id(entry.name)
        except ValueError:
            continue
        if entry.is_dir(follow_symlinks=False):
            names.append(entry.name)
    return sorted(names)
