"""The HTTP side of the API's streams: a slot per stream request, and a raw log in send-sized pieces.

An event stream's body is its thread's runtime's (:meth:`ThreadRuntime.stream`, one
operation: history from the client's position, then the live tail; see
``runtime/thread.py``). Every event stream follows the same id rule: a frame has
``id: N`` exactly when a client holding everything up to that frame holds the effect of
every stored event up to seq N. Where a stream ends is its rule, chosen by the route: a
run's caller when it has the run's last event, a connect once the thread is settled, a
watcher only while the process drains (``fanout/follower.py``'s followers); every
stream ends when its thread is deleted, with a ``thread_deleted`` frame.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

from starlette.requests import Request

from agui_gateway.server.errors import TooManyStreams
from agui_gateway.server.fanout.batches import Batcher, slices
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.http.stream_slots import StreamSlot


def stream_slot(services: ApiServices, request: Request) -> StreamSlot:
    """A slot for the request's stream, or :class:`TooManyStreams` (503).

    The token is checked first, before a body is read or an agent name is looked up
    (no enumeration of agent names without a token).
    """
    grant = services.auth.require_any(request)
    try:
        return services.streams.acquire(grant.token if grant is not None else None)
    except TooManyStreams as exc:
        services.metrics.streams_refused.labels(exc.cap).inc()
        raise


async def batched(lines: AsyncGenerator[bytes, None]) -> AsyncIterator[bytes | memoryview]:
    """Stored lines (a thread's raw log) gathered into send-sized pieces."""
    batcher = Batcher()
    async with aclosing(lines):  # a client that goes away closes the read it stands on at once
        async for line in lines:
            full = batcher.add(line)
            if full is not None:
                for piece in slices(full):
                    yield piece
        rest = batcher.flush()
        if rest is not None:
            yield rest
