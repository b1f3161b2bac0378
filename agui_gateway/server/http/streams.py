"""The bodies of the API's streams: a thread's history, then its live tail.

Every event stream follows the same id rule: a frame has ``id: N`` exactly when
a client holding everything up to that frame holds the effect of every stored
event up to seq N. History for a fresh client (``position`` None) is the
compacted replay view (with ``turns``, the history window of the last ``turns`` runs:
``protocol/compaction/window.py``); for a resuming client it is exactly the stored events
after its position (0: all of them, uncompacted). Either way the live tail
follows from where the history ends, read from the log by the client's own
cursor (:class:`~agui_gateway.server.fanout.follower.LogFollower`).

When a stream ends is the caller's rule (``stop``): a run's caller when it has the
run's last event (:meth:`ActiveRun.caller_complete`), a connect once the thread is
settled (:meth:`ThreadRuntime.settled`), a watcher never; every stream ends when its
thread is deleted, with a ``thread_deleted`` frame.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing

from starlette.requests import Request

from agui_gateway.server.errors import TooManyStreams
from agui_gateway.server.fanout.follower import Batcher, LogFollower, slices
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.http.services import ApiServices
from agui_gateway.server.http.stream_slots import StreamSlot
from agui_gateway.server.runtime.thread import ThreadRuntime
from agui_gateway.server.sse import HEARTBEAT, STREAM_PREAMBLE, store_error_frame, thread_deleted_frame
from agui_gateway.store.base import StoreError, StoreUnavailable, ThreadDeleted

log = logging.getLogger("agui_gateway.server.streams")


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


async def replay_then_live(
    services: ApiServices,
    thread: ThreadRuntime,
    position: int | None,
    *,
    wait: Callable[[int, float], Awaitable[int]],
    stop: Callable[[int], bool] | None = None,
    bound: Callable[[], int | None] | None = None,
    turns: int | None = None,
    patience: StorePatience | None = None,
    lost: Callable[[str], bytes] | None = None,
) -> AsyncIterator[bytes | memoryview]:
    """History (the replay view when ``position`` is None, windowed to ``turns`` runs
    when given), then the log after it. A resuming client holds its history already:
    ``turns`` means nothing to it and is ignored.

    ``wait``, ``stop`` and ``bound`` are the :class:`LogFollower`'s: how to sleep
    when caught up, when the stream is complete, and the last seq it may send.
    ``patience``: how long it waits through a store outage (default: the outage budget,
    see ``fanout/store_patience.py``); ``lost``: the frame it ends with when the store
    stays away longer (default: an ``error`` frame).
    """
    metrics = services.metrics
    thread.add_subscriber()
    follower: LogFollower | None = None
    try:
        yield STREAM_PREAMBLE
        if position is None:
            view = await thread.replay_view(turns)
            kind = "fresh" if turns is None else "window"
            metrics.replays.labels(kind).inc()
            metrics.replay_bytes.labels(kind).inc(view.nbytes)
            for chunk in view.chunks:
                yield chunk
            cursor = view.seq
        else:
            # Opening the thread also closes a run a crash left open (its RUN_ERROR
            # then reaches this client like any stored event).
            await thread.ready()
            metrics.replays.labels("resume").inc()
            cursor = position
        follower = LogFollower(
            services.store,
            thread.thread_id,
            thread.recent,
            cursor,
            heartbeat_s=services.config.heartbeat_s,
            heartbeat=HEARTBEAT,
            wait=wait,
            stop=stop,
            bound=bound,
        )
        if patience is None:
            patience = StorePatience(services.config.store_outage_budget_s)
        while True:
            try:
                # Closed with the stream, not when the garbage collector finds it: it holds
                # the log's file descriptor while it reads.
                async with aclosing(follower.follow()) as chunks:
                    async for chunk in chunks:
                        patience.answered()
                        yield chunk
                break
            except StoreUnavailable as exc:
                # A store outage (a Redis failover): wait it out as the patience allows,
                # heartbeats going out, then go on from the follower's cursor.
                if not patience.waits():
                    raise
                # Debug only: every stream of the process meets the same outage (the runs log it).
                log.debug("thread %s: the store is unavailable (%s); the stream waits", thread.thread_id, exc)
                yield HEARTBEAT
                await patience.pause()
    except ThreadDeleted:
        # Before StoreError, its base: the thread is gone (here or on another replica), and
        # so is this stream; the client learns why instead of reconnecting in a loop. A
        # stream complete by its own rule (a run's caller holding the run's end, stopped
        # for the delete) just ends, as it would have.
        if follower is None or stop is None or not stop(follower.cursor):
            yield thread_deleted_frame(thread.thread_id)
    except StoreError as exc:
        # The store went away (Redis down) for longer than the stream waits for it: tell the
        # client and close (a run's caller: its run's RUN_ERROR, ``lost``); it resumes by
        # its last id once the gateway answers again. Nothing is lost: the log has it all.
        log.warning("thread %s: stream closed, the store failed: %s", thread.thread_id, exc)
        yield store_error_frame(str(exc)) if lost is None else lost(str(exc))
    finally:
        thread.remove_subscriber()
        if position is not None and follower is not None:
            metrics.replay_bytes.labels("resume").inc(follower.bytes_before_caught_up)


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
