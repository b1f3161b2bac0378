"""Send-sized pieces: the bytes of a stream handed to ASGI sends of about :data:`BATCH_BYTES`.

Shared by every stream body: the log follower (``follower.py``), the replay views
(``runtime/replay.py``) and the raw log (``http/streams.py``). A stalled client's
generator is suspended in ``send`` holding at most one piece (see ``follower.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

# Bytes handed to one ASGI send: small enough that a stalled client's transport
# buffers little beyond it, big enough that a replay is not a flood of tiny writes.
BATCH_BYTES = 32 * 1024


def slices(data: bytes | memoryview, size: int = BATCH_BYTES) -> Iterable[bytes | memoryview]:
    """``data`` in pieces of at most ``size`` bytes, without copying."""
    if len(data) <= size:
        yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield view[start : start + size]


class Batcher:
    """Groups small frames into sends of about :data:`BATCH_BYTES`."""

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._size = 0

    def add(self, data: bytes | memoryview) -> bytes | memoryview | None:
        """Add a frame; returns a full batch to send, or None."""
        self._parts.append(data)
        self._size += len(data)
        return self.flush() if self._size >= BATCH_BYTES else None

    def flush(self) -> bytes | memoryview | None:
        if not self._parts:
            return None
        out = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return out
