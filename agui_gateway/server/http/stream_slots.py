"""Caps on concurrent event streams, per process and per token.

A stream holds a socket and, while it catches up, the descriptor of the log it
reads: past the process's descriptor limit, streams would break mid-way with
"Too many open files". Beyond a cap a new stream is refused up front with
``503`` and ``Retry-After`` instead, which EventSource and the official client
handle as a transient failure.

The process cap is the configured ``max_streams``, lowered to what the soft
``RLIMIT_NOFILE`` allows: :data:`FDS_PER_STREAM` descriptors per stream, after
:data:`FD_RESERVE` for everything else (store appends, the agents' connections,
listening sockets, the connections accepted in one turn of the loop before they are
refused: ``connections.py``, whose cap on connections is derived from the same budget).
"""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass

from agui_gateway.server.errors import TooManyStreams

# Its socket and the log it reads, plus room for the sockets of the connections
# refused meanwhile (each holds a descriptor until its 503 is sent and closed).
FDS_PER_STREAM = 3
FD_RESERVE = 128


def descriptor_budget(reserve: int = FD_RESERVE) -> int:
    """The descriptors the soft ``RLIMIT_NOFILE`` leaves for connections and streams, after
    ``reserve`` for everything else: the one definition both the stream cap and the
    connection cap (``connections.py``) are derived from."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    return max(0, soft - reserve)


def fd_stream_cap(reserve: int = FD_RESERVE, per_stream: int = FDS_PER_STREAM) -> int:
    """How many streams the process's descriptor limit leaves room for."""
    return max(1, descriptor_budget(reserve) // per_stream)


@dataclass
class StreamSlot:
    """One held slot; :meth:`release` is idempotent."""

    _owner: StreamSlots
    _key: str | None
    _released: bool = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner._release(self._key)


class StreamSlots:
    def __init__(self, max_streams: int, max_per_token: int) -> None:
        self.limit = min(max_streams, fd_stream_cap())
        self.per_token = max_per_token
        self.open = 0
        self._by_key: Counter[str] = Counter()

    def acquire(self, key: str | None) -> StreamSlot:
        """A slot for a stream of the token ``key`` (None: no token), or :class:`TooManyStreams`."""
        if self.open >= self.limit:
            raise TooManyStreams("process", self.limit)
        if key is not None and self._by_key[key] >= self.per_token:
            raise TooManyStreams("token", self.per_token)
        self.open += 1
        if key is not None:
            self._by_key[key] += 1
        return StreamSlot(self, key)

    def _release(self, key: str | None) -> None:
        self.open -= 1
        if key is not None:
            self._by_key[key] -= 1
            if self._by_key[key] <= 0:
                del self._by_key[key]
