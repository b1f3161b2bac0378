"""Slow and idle connections: a deadline for a request's arrival, and a cap on open connections.

uvicorn alone holds a connection that never finishes its request head for as long as
the client likes, and accepts connections until ``accept()`` fails with "Too many open
files": a few thousand such clients (or one slowloris) then keep the gateway from
answering anything, ``/healthz`` included. Here every connection runs
:class:`GuardedHttpProtocol` (uvicorn's httptools protocol with three rules added):

* **A deadline for the request**: from the connection's start, and again from the first
  byte of each further request on a kept-alive connection, the whole request (head and
  body) must arrive within ``request_timeout``; otherwise the client gets a 408 and the
  connection is closed. The clock only runs while the gateway is reading: a request
  queued behind one in progress (pipelining), or a body the app has not taken yet, is
  the gateway's wait, not the client's.
* **An idle keep-alive limit**: uvicorn's ``timeout_keep_alive``, from the end of a
  response to the next request.
* **A cap on open connections** (:func:`connection_cap`): below the descriptor limit, with
  headroom for the listener, the store, the agents' connections and each stream's log.
  At the cap, a new connection takes the place of the one that has waited longest
  without a request in progress: one still sending its head gets a 503 with
  ``Retry-After``, one idle between requests is closed as the keep-alive limit would.
  So clients that only hold connections cannot keep a new one (a probe of
  ``/healthz``) out. When every connection has a request in progress the new one is
  refused at once with that 503, never left waiting.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from agui_gateway.server.errors import ApiError, RequestTimeout, TooManyConnections
from agui_gateway.server.http.responses import raw_error_response
from agui_gateway.server.http.stream_slots import descriptor_budget
from agui_gateway.server.metrics import GatewayMetrics

# asyncio accepts up to its ``backlog`` connections per turn of the event loop, before
# their protocols can refuse them: a burst's descriptors beyond the cap, which come out
# of the reserve (``stream_slots.FD_RESERVE``), so the batch is small. asyncio uses that
# one number as the kernel's queue of connections waiting for accept() too, which at 64
# would overflow in a burst (each client then waits a second for its SYN to be sent
# again): :func:`widen_listen_queue` gives the queue uvicorn's usual size back.
ACCEPT_BATCH = 64
LISTEN_QUEUE = 2048


def connection_cap(configured: int | None, stream_limit: int) -> int:
    """The cap on open connections: ``configured`` (None: no cap of its own), lowered to what
    the descriptor limit leaves beside the log each of ``stream_limit`` streams may hold
    open (the stream cap's own accounting: a stream's socket and log, and one more
    connection, per stream)."""
    derived = max(1, descriptor_budget() - stream_limit)
    return derived if configured is None else min(configured, derived)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    request_timeout_s: float
    keep_alive_timeout_s: float


class ConnectionGuard:
    """The open connections of one server: the cap, and which are waiting without a request
    in progress (oldest first), the ones a new connection may take the place of."""

    def __init__(self, limits: ConnectionLimits, metrics: GatewayMetrics) -> None:
        self.limits = limits
        self._metrics = metrics
        self._open: set[GuardedHttpProtocol] = set()
        self._waiting: OrderedDict[GuardedHttpProtocol, None] = OrderedDict()

    @property
    def open(self) -> int:
        return len(self._open)

    def admit(self, connection: GuardedHttpProtocol) -> bool:
        """Count ``connection`` in, making room by closing the longest-waiting one at the cap;
        False when every open connection has a request in progress (refuse it)."""
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self._metrics.connections_closed.labels(reason="refused").inc()
                return False
            oldest, _ = self._waiting.popitem(last=False)
            self._open.discard(oldest)
            self._metrics.connections_closed.labels(reason="replaced").inc()
            oldest.make_room()
        self._open.add(connection)
        self._waiting[connection] = None
        self._metrics.connections.set(len(self._open))
        return True

    def busy(self, connection: GuardedHttpProtocol) -> None:
        """A request is in progress on it: it keeps its place."""
        self._waiting.pop(connection, None)

    def waiting(self, connection: GuardedHttpProtocol) -> None:
        """Its requests are answered: it may give its place to a new connection."""
        if connection in self._open:
            self._waiting[connection] = None
            self._waiting.move_to_end(connection)

    def release(self, connection: GuardedHttpProtocol) -> None:
        self._waiting.pop(connection, None)
        self._open.discard(connection)
        self._metrics.connections.set(len(self._open))

    def timed_out(self) -> None:
        self._metrics.connections_closed.labels(reason="request_timeout").inc()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol under a :class:`ConnectionGuard` (see the module docstring);
    :func:`guarded_protocol` makes the class a server uses."""

    guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._receiving = False  # a request has begun and has not fully arrived
        self._answered = False  # a response has been sent on it
        # uvicorn annotates it as whole seconds, but only hands it to call_later, which takes any.
        self.timeout_keep_alive = self.guard.limits.keep_alive_timeout_s  # type: ignore[assignment]
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        super().connection_made(transport)
        if not self.guard.admit(self):
            limit = self.guard.limits.max_connections
            self._close_with(TooManyConnections(limit))
            return
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        self.guard.release(self)
        super().connection_lost(exc)

    def make_room(self) -> None:
        """Closed for a new connection at the cap (it has no request in progress): between two
        requests silently, as the keep-alive limit would; before or during its request's
        head with a 503, so its client knows to retry."""
        self._stop_deadline()
        if self.transport.is_closing():
            return
        if self._answered and not self._receiving:
            self.transport.close()
        else:
            self._close_with(TooManyConnections(self.guard.limits.max_connections))

    # The parser's callbacks, for the deadline and the guard's bookkeeping.

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # uvicorn stops the keep-alive clock at any byte, but the parser skips the empty
        # lines a client may send between requests: without this, "\r\n" now and then
        # would hold the connection for ever.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self._deadline is None and not self.transport.is_closing():
            self._start_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        self._start_deadline()  # a new request on a kept-alive connection gets the whole time again

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.guard.busy(self)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._receiving = False
        self._stop_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle.response_complete:  # nothing pipelined started
            self._answered = True
            self.guard.waiting(self)

    # The deadline.

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.guard.limits.request_timeout_s, self._request_timed_out)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:
            # Reading is paused by the gateway (a pipelined request waits for the response
            # before it, or the app has not taken the body yet): not the client's delay.
            self._start_deadline()
            return
        self.guard.timed_out()
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self._close_with(RequestTimeout(self.guard.limits.request_timeout_s))
        else:  # a response is under way: a 408 cannot be written into it
            self.transport.close()

    def _close_with(self, error: ApiError) -> None:
        if self.cycle is not None:
            # The app may still be waiting for the body: it sees a disconnect, and what it
            # sends from now on is dropped rather than written after this response.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(raw_error_response(error))
        self.transport.close()


def widen_listen_queue(listener_fd: int) -> None:
    """Give the listening socket ``listener_fd`` a queue of :data:`LISTEN_QUEUE` connections
    (listen() again changes only the queue's size), once asyncio serves it with its accept
    batch of :data:`ACCEPT_BATCH`."""
    listener = socket.socket(fileno=os.dup(listener_fd))
    try:
        listener.listen(LISTEN_QUEUE)
    finally:
        listener.close()


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedHttpProtocol]:
    """The protocol class of one server: its connections counted by ``guard``."""
    return type("GuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})
