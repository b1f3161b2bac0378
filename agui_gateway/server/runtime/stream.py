"""One stream of a thread, opened at a client's position: :func:`thread_stream`.

The body of :meth:`~.thread.ThreadRuntime.stream`, which the runtime runs inside its own
``stream`` (so the runtime's calls it makes, reads of its history, never leave the runtime
and come back: ``scripts/module_path.py``): the preamble, the history (the replay view, or
the stored events after the client's position), then the follower
(``fanout/follower.py``) through store outages as the patience allows
(``fanout/store_patience.py``), and the frame that ends it when the thread is deleted or
the store is gone for too long.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Protocol

from agui_gateway.server.fanout.follower import Draining, LogFollower, ThreadState, follower_for
from agui_gateway.server.fanout.recent import RecentFrames
from agui_gateway.server.fanout.store_patience import StorePatience
from agui_gateway.server.fanout.tail import ThreadTail
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.active_run import ActiveRun
from agui_gateway.server.runtime.replay import ReplayView
from agui_gateway.server.sse import HEARTBEAT, STREAM_PREAMBLE, store_error_frame, thread_deleted_frame
from agui_gateway.store.base import StoreError, StoreUnavailable, ThreadDeleted, ThreadStore

log = logging.getLogger("agui_gateway.server.runtime.thread")  # the runtime's logger, as before the split


class StreamSource(Protocol):
    """What a stream reads of its thread (the runtime)."""

    thread_id: str
    store: ThreadStore
    recent: RecentFrames
    tail: ThreadTail
    state: ThreadState

    async def ready(self) -> object: ...

    async def replay_view(self, turns: int | None = None) -> ReplayView: ...

    async def current_epoch(self) -> str | None: ...


async def thread_stream(
    thread: StreamSource,
    metrics: GatewayMetrics,
    position: int | None,
    heartbeat_s: float,
    patience: StorePatience,
    *,
    epoch: str | None,
    turns: int | None,
    caller_of: ActiveRun | None,
    until_settled: bool,
    process: Draining | None,
    lost: Callable[[str], bytes] | None,
) -> AsyncGenerator[bytes | memoryview, None]:
    """A stream of ``thread``: history (the replay view when ``position`` is None, windowed to
    ``turns`` runs when given; else exactly the stored events after ``position``), then the
    log after it (:class:`~agui_gateway.server.fanout.follower.LogFollower`).

    Where it ends is its follower's rule (``fanout/follower.py``):
    with ``caller_of``, when the run's caller has the run's last event; with
    ``until_settled`` (a connect) once the thread is settled; else (a watcher) only
    once ``process`` drains and the thread has no run open. Every stream ends when
    its thread is deleted, with a ``thread_deleted`` frame. Through a store outage it
    waits as ``patience`` allows (``fanout/store_patience.py``), then ends with an
    ``error`` frame, or ``lost``'s (the client resumes by its last id).

    ``epoch``: the incarnation of the thread the position was checked against; should the
    thread be another by the time the stream starts (deleted and written again meanwhile),
    the stream ends with the ``thread_deleted`` frame instead of serving those positions.
    """
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
        # Still the incarnation the position was checked against? (The ids carry this
        # runtime's epoch; one not known yet is read by the follower when it needs it.)
        if epoch is not None and await thread.current_epoch() != epoch:
            raise ThreadDeleted(f"thread {thread.thread_id!r} was deleted")
        follower = follower_for(
            thread.store,
            thread.thread_id,
            thread.recent,
            cursor,
            heartbeat_s=heartbeat_s,
            tail=thread.tail,
            state=thread.state,
            caller_of=caller_of,
            until_settled=until_settled,
            process=process,
        )
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
        if follower is None or not follower.complete(follower.cursor):
            yield thread_deleted_frame(thread.thread_id)
    except StoreError as exc:
        # The store went away (Redis down) for longer than the stream waits for it: tell the
        # client and close (a run's caller: its run's RUN_ERROR, ``lost``); it resumes by
        # its last id once the gateway answers again. Nothing is lost: the log has it all.
        log.warning("thread %s: stream closed, the store failed: %s", thread.thread_id, exc)
        yield store_error_frame(str(exc)) if lost is None else lost(str(exc))
    finally:
        if position is not None and follower is not None:
            metrics.replay_bytes.labels("resume").inc(follower.bytes_before_caught_up)
