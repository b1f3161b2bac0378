"""Blocking helpers of the file store's data lifecycle: epochs, deleting, importing.

Layout beside ``threads/`` under the data directory::

    threads/<thread_id>/epoch     the thread's epoch, one line (written before its first record)
    trash/<thread_id>.<hex>/      a thread being deleted: renamed here in one step, then removed
    incoming/<thread_id>.<hex>/   a thread being imported: written here, renamed into threads/

A delete renames the thread's folder into ``trash/`` (atomic on one file system, and
fsynced), so from that instant nothing of the thread is readable; only then are its
files removed. A crash in between leaves a folder in ``trash/``, which the next open
of the store removes. An import likewise becomes visible in one rename, and the next
open removes what a crash left in ``incoming/``. Both live under the data directory,
so the renames never cross a file system.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from agui_gateway.store.base import validate_epoch
from agui_gateway.store.file.fs import atomic_write, ensure_dir, fsync_dir

EPOCH_NAME = "epoch"
TRASH_DIR = "trash"
INCOMING_DIR = "incoming"


def read_epoch(directory: Path) -> str | None:
    """The epoch saved in ``directory``; None when there is none (or it is unreadable)."""
    try:
        text = (directory / EPOCH_NAME).read_text("ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        return validate_epoch(text)
    except ValueError:
        return None


def write_epoch(directory: Path, epoch: str, durable: bool) -> None:
    """Save the epoch atomically (temp file, rename), creating the folder if needed."""
    ensure_dir(directory, durable)
    atomic_write(directory / EPOCH_NAME, (validate_epoch(epoch).encode() + b"\n",), durable=durable)


def private_name(thread_id: str) -> str:
    """A folder name under trash/ or incoming/ that no other operation uses."""
    return f"{thread_id}.{uuid.uuid4().hex}"


def move_to_trash(directory: Path, trash: Path, durable: bool) -> Path | None:
    """Rename ``directory`` into ``trash`` in one step; None when it does not exist."""
    ensure_dir(trash, durable)
    target = trash / private_name(directory.name)
    try:
        os.rename(directory, target)
    except FileNotFoundError:
        return None
    if durable:  # the rename itself must survive a crash: both folders' entries
        fsync_dir(directory.parent)
        fsync_dir(trash)
    return target


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def empty_dir(directory: Path) -> int:
    """Remove everything under ``directory`` (left by a crash); returns how many entries."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
    return len(entries)


def log_size(directory: Path, log_name: str) -> int:
    """The size of the thread's log file, 0 when it has none."""
    try:
        return (directory / log_name).stat().st_size
    except FileNotFoundError:
        return 0


def log_mtime_ms(path: Path) -> int | None:
    """When the log was last written (ms), None when it does not exist.

    A record's ``ts`` is taken before its line is written, so ``ts <= mtime``: a log whose
    mtime is before a cutoff has only records before it (an import sets the mtime to its
    last record's ``ts``, so the rule holds for imported threads too).
    """
    try:
        return os.stat(path).st_mtime_ns // 1_000_000
    except FileNotFoundError:
        return None
