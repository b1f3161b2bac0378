"""SIGTERM drains the gateway before uvicorn stops: what ``serve`` does with the signals.

uvicorn alone stops listening at SIGTERM and cuts every stream a few seconds later, so
every run in progress ended in a RUN_ERROR its caller never received. Here the first
SIGTERM (or SIGINT) starts the gateway's drain instead (``server/runtime/readiness.py``:
new runs refused with 503, runs in progress going on to their end for at most the drain
timeout, watchers closed once their thread's run ended) while the process keeps
listening; only then does uvicorn shut down (the streams left finish within
:data:`STREAMS_CLOSE_S`). A second signal cuts the drain short: the runs still going
are stopped with a stored RUN_ERROR, which their callers still receive. The process
then exits 0 (the signal is not raised again once uvicorn is done, as it otherwise
would be).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from agui_gateway.server.gateway import Gateway
from agui_gateway.server.http.connections import (
    ACCEPT_BATCH,
    ConnectionGuard,
    ConnectionLimits,
    connection_cap,
    guarded_protocol,
    widen_listen_queue,
)

log = logging.getLogger("agui_gateway.cli.drain")

# After the drain, how long uvicorn waits for the streams still open (callers receiving
# their run's last events, watchers ending) before it closes them.
STREAMS_CLOSE_S = 5.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self._gateway = gateway
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._cut_short: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._cut_short = asyncio.Event()
        await super().startup(sockets)
        for server in self.servers:
            for listener in server.sockets:
                widen_listen_queue(listener.fileno())

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A plain signal handler (uvicorn installs it with signal.signal): hand over to the loop.
        loop = self._loop
        if loop is None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        loop.call_soon_threadsafe(self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        if self._drain is not None and self._drain.done():
            self.force_exit = True  # drained already: uvicorn is closing the last streams
        elif self._drain is None:
            log.info("%s: draining (up to %ss)", signal.Signals(sig).name, self._gateway.config.drain_timeout_s)
            self._drain = asyncio.ensure_future(self._drain_then_exit())
        else:
            log.warning("%s again: ending the drain now", signal.Signals(sig).name)
            assert self._cut_short is not None
            self._cut_short.set()

    async def _drain_then_exit(self) -> None:
        assert self._cut_short is not None
        try:
            await self._gateway.readiness.drain(self._gateway.config.drain_timeout_s, self._cut_short)
        except Exception:  # the process must still exit
            log.exception("draining failed")
        finally:
            self.should_exit = True


def serve_draining(app: Starlette, gateway: Gateway, *, host: str, port: int, log_level: str) -> None:
    """Run ``app`` on uvicorn until a signal has drained it (see the module docstring)."""
    settings = gateway.config
    limits = ConnectionLimits(
        max_connections=connection_cap(settings.max_connections, gateway.streams.limit),
        request_timeout_s=settings.request_timeout_s,
        keep_alive_timeout_s=settings.keep_alive_timeout_s,
    )
    log.info(
        "connections: at most %d open; a request must arrive within %gs, idle ones close after %gs",
        limits.max_connections,
        limits.request_timeout_s,
        limits.keep_alive_timeout_s,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=log_level == "debug",
        timeout_graceful_shutdown=int(STREAMS_CLOSE_S),
        # Slow and idle connections: the deadline, the keep-alive limit and the cap
        # (server/http/connections.py) on uvicorn's httptools protocol; no WebSockets.
        http=guarded_protocol(ConnectionGuard(limits, gateway.metrics)),
        ws="none",
        backlog=ACCEPT_BATCH,
    )
    DrainingServer(config, gateway).run()
