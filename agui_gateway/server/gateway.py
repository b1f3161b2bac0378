"""The state of one gateway app: :class:`Gateway`, built from a configuration.

Wiring: it builds the parts of every room below it (the runtime's thread registry
and run manager, fan-out's change feed, the HTTP room's authorizer and stream
slots, the store and the agents) and opens and closes them with the app. Everything a
request handler needs hangs off one :class:`Gateway` object that
:func:`~agui_gateway.server.app.create_app` stores on ``app.state.gateway``; the
handlers see it as :class:`~agui_gateway.server.http.services.ApiServices`. There
are no module globals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.fanout.changes import ThreadChanges
from agui_gateway.server.http.auth import Authorizer
from agui_gateway.server.http.stream_slots import StreamSlots
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.deletion import ThreadDeleter
from agui_gateway.server.runtime.leases import RecoverySweep
from agui_gateway.server.runtime.manager import RunManager
from agui_gateway.server.runtime.outage_buffer import OutageLimits
from agui_gateway.server.runtime.readiness import Readiness
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.server.runtime.retention import RetentionSweep
from agui_gateway.store.base import ThreadStore
from agui_gateway.store.factory import build_store
from agui_gateway.store.lease import RunLeases
from agui_gateway.upstream.agents import AgentDirectory
from agui_gateway.upstream.asgi import ASGIApp

log = logging.getLogger("agui_gateway.server.gateway")

DEMO_AGENT = "demo"
DEMO_PATH = "/demo/agent"


@dataclass
class Gateway:
    """The state of one gateway app."""

    config: GatewayConfig
    store: ThreadStore
    agents: AgentDirectory
    metrics: GatewayMetrics
    threads: ThreadRegistry
    runs: RunManager
    auth: Authorizer
    http: httpx.AsyncClient
    changes: ThreadChanges  # which threads changed, for the thread list's live feed
    streams: StreamSlots
    readiness: Readiness  # start-up recovery, readiness, drain
    deletions: ThreadDeleter  # DELETE /threads/{t} and retention
    sweep: RecoverySweep | None = None  # closes the runs of dead replicas (stores with leases)
    retention: RetentionSweep | None = None  # deletes idle threads (config.retention_s)

    @classmethod
    def create(
        cls,
        config: GatewayConfig,
        store: ThreadStore | None = None,
        apps: Mapping[str, ASGIApp | tuple[ASGIApp, str]] | None = None,
    ) -> Gateway:
        """The gateway for ``config``; ``apps`` adds in-process agents by name (app, or (app, path))."""
        store = store if store is not None else build_store(config)
        metrics = GatewayMetrics()
        targets = dict(config.agents)
        if config.demo:
            targets.setdefault(DEMO_AGENT, demo_agent_url(config))
        # The upstream client: no pool limit (each open run holds one streaming connection).
        http = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=32))
        changes = ThreadChanges()
        outage = OutageLimits.of(config)
        runs = RunManager(metrics, config.timeouts, outage_limits=outage)
        threads = ThreadRegistry(
            store,
            metrics,
            cached_threads=config.cached_threads,
            cache_bytes=config.cache_bytes,
            recover_open_runs=config.recover_open_runs,
            on_change=changes.touch,
            on_deleted=changes.deleted,
        )
        return cls(
            config=config,
            store=store,
            agents=AgentDirectory.from_targets(targets, http, apps),
            metrics=metrics,
            threads=threads,
            runs=runs,
            auth=Authorizer.from_config(config),
            http=http,
            changes=changes,
            streams=StreamSlots(config.max_streams, config.max_streams_per_token),
            readiness=Readiness(store, threads, runs, recover_open_runs=config.recover_open_runs),
            deletions=ThreadDeleter(store, threads, runs),
        )

    async def open(self) -> None:
        await self.store.open()
        await self.agents.open()
        leases = self.store.leases
        if self.config.recover_open_runs and leases is not None and self.config.replica_id is not None:
            await self._recover_after_restart(leases)
        # The runs a crash left open are closed in the background, from the store's index
        # of open runs: the process answers at once, however many threads it has.
        self.readiness.start()
        if leases is not None and self.config.recover_open_runs:
            self.sweep = RecoverySweep(leases, self._recover, interval_s=leases.ttl_s / 2)
            self.sweep.start()
        if self.config.retention_s is not None:
            self.retention = RetentionSweep(self.store, self.deletions, self.config.retention_s)
            self.retention.start()

    async def _recover_after_restart(self, leases: RunLeases) -> None:
        """Close the runs this replica (by its stable id) was driving when its previous process
        died, without waiting for their leases to lapse."""
        for thread_id in await leases.held_by_this_replica():
            if await self.threads.get(thread_id).recover_after_restart():
                log.warning(
                    "thread %s: closed a run replica %r left open when its previous process stopped",
                    thread_id,
                    leases.replica_id,
                )

    def _recover(self, thread_id: str) -> asyncio.Future[bool]:
        """Close the run a dead replica left open on the thread (see runtime/leases.py)."""
        runtime = self.threads.get(thread_id)
        if runtime.run is not None:  # our own run: its renewal is late, not dead
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(False)
            return done
        return asyncio.ensure_future(runtime.close_abandoned_run())

    async def close(self) -> None:
        try:
            await self.readiness.close()
            if self.sweep is not None:
                await self.sweep.stop()
            if self.retention is not None:
                await self.retention.stop()
            await self.runs.shutdown()
            await self.agents.close()
            await self.http.aclose()
        finally:
            await self.store.close()


def demo_agent_url(config: GatewayConfig) -> str:
    """Where the gateway reaches the demo agent it serves itself (over real HTTP)."""
    host = config.host
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    # The trailing slash: Starlette redirects a mount's bare path with a 307.
    return f"http://{host}:{config.port}{DEMO_PATH}/"
