"""Atomic checkpoint files (blocking; the file store runs these in an executor).

Layout: one header line ``{"format":1,"seq":N,"length":L,"crc32":C[,"epoch":E]}``
followed by the ``L`` data bytes. ``epoch`` is the thread's epoch when the checkpoint
was saved: a checkpoint of another incarnation of the thread (one saved late, after a
delete) is not loaded (``FileStore.load_checkpoint``); one saved before epochs existed
has none, and belongs to a legacy thread. A save writes a temp file in the same directory,
fsyncs it, renames it over the old checkpoint and fsyncs the directory, so a
crash at any point leaves either the old or the new checkpoint, never a mix.
Leftover temp files from a crash are ignored by :func:`read_checkpoint` and
removed by :func:`remove_temp_files`. The CRC catches a checkpoint damaged
outside our control (or written with fsync disabled before a power loss).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import orjson

from agui_gateway.store.base import Checkpoint
from agui_gateway.store.file.fs import atomic_write, temp_prefix

CHECKPOINT_NAME = "checkpoint.bin"
_TEMP_PREFIX = temp_prefix(CHECKPOINT_NAME)


class CorruptCheckpoint(ValueError):
    """The checkpoint file exists but does not pass its header/CRC checks."""


def write_checkpoint(directory: Path, checkpoint: Checkpoint, *, durable: bool, epoch: str | None = None) -> None:
    fields: dict[str, object] = {
        "format": 1,
        "seq": checkpoint.seq,
        "length": len(checkpoint.data),
        "crc32": zlib.crc32(checkpoint.data),
    }
    if epoch is not None:
        fields["epoch"] = epoch
    header = orjson.dumps(fields)
    atomic_write(directory / CHECKPOINT_NAME, (header + b"\n", checkpoint.data), durable=durable)


def read_checkpoint(directory: Path) -> Checkpoint | None:
    """The saved checkpoint, None when there is none; raises CorruptCheckpoint."""
    found = read_checkpoint_and_epoch(directory)
    return found[0] if found is not None else None


def read_checkpoint_and_epoch(directory: Path) -> tuple[Checkpoint, str | None] | None:
    """The saved checkpoint and the epoch it was saved under (None: saved before epochs)."""
    try:
        blob = (directory / CHECKPOINT_NAME).read_bytes()
    except FileNotFoundError:
        return None
    newline = blob.find(b"\n")
    try:
        header = orjson.loads(blob[:newline]) if newline >= 0 else None
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("format") != 1:
        raise CorruptCheckpoint(f"{directory / CHECKPOINT_NAME}: bad header")
    data = blob[newline + 1 :]
    seq = header.get("seq")
    if type(seq) is not int or header.get("length") != len(data) or header.get("crc32") != zlib.crc32(data):
        raise CorruptCheckpoint(f"{directory / CHECKPOINT_NAME}: length or CRC mismatch")
    epoch = header.get("epoch")
    return Checkpoint(seq=seq, data=data), epoch if isinstance(epoch, str) else None


def remove_temp_files(directory: Path) -> int:
    """Delete temp files left by a crashed save; returns how many were removed."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(_TEMP_PREFIX):
            Path(entry.path).unlink(missing_ok=True)
            removed += 1
    return removed
