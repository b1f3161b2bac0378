"""``agui-gateway serve``: run the gateway on uvicorn."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from agui_gateway.cli.process import tune_garbage_collector
from agui_gateway.server.config import (
    ConfigError,
    GatewayConfig,
    load_config,
    parse_agents,
    parse_cors_origins,
    read_store_flags,
)
from agui_gateway.server.errors import InsecureBindError, InspectorUnavailable
from agui_gateway.server.http.auth import check_bind
from agui_gateway.server.ui.inspector import INSPECTOR_PATH
from agui_gateway.store.factory import describe_store


def build_config(
    *,
    config_file: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    data: Path | None = None,
    agents: tuple[str, ...] = (),
    demo: bool = False,
    insecure: bool = False,
    fsync: str | None = None,
    heartbeat: float | None = None,
    demo_pace: float | None = None,
    cors_origins: tuple[str, ...] = (),
    store: str | None = None,
    redis_prefix: str | None = None,
    lease_ttl: float | None = None,
    replica_id: str | None = None,
    drain_timeout: float | None = None,
    request_timeout: float | None = None,
    keep_alive_timeout: float | None = None,
    max_connections: int | None = None,
    retention: str | None = None,
    store_outage_budget: float | None = None,
    store_outage_buffer: int | None = None,
) -> GatewayConfig:
    flags = {
        "store": store,
        "redis_prefix": redis_prefix,
        "lease_ttl": lease_ttl,
        "replica_id": replica_id,
        "drain_timeout": drain_timeout,
        "request_timeout": request_timeout,
        "keep_alive_timeout": keep_alive_timeout,
        "max_connections": max_connections,
        "retention": retention,
        "store_outage_budget": store_outage_budget,
        "store_outage_buffer": store_outage_buffer,
    }
    # The store flags go through the config file's parser: one set of rules and messages.
    store_fields = read_store_flags({k: v for k, v in flags.items() if v is not None})
    config = load_config(
        config_file,
        os.environ,
        host=host,
        port=port,
        data_dir=data,
        demo=demo or None,
        insecure=insecure or None,
        fsync=fsync,
        heartbeat_s=heartbeat,
        demo_pace=demo_pace,
        extra_agents=parse_agents(list(agents)) if agents else None,
        # Flags replace the origins of the config file and the environment.
        cors_origins=parse_cors_origins(list(cors_origins)) if cors_origins else None,
    )
    return replace(config, **store_fields)


@click.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8000).")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory of the embedded store (default ./agui-data).",
)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    metavar="NAME=URL|NAME=module:app[/path]",
    help="An upstream AG-UI agent: a URL, or an ASGI app to run in this process; repeat for several.",
)
@click.option("--demo", is_flag=True, help="Serve the built-in scripted demo agent as agent 'demo'.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="A TOML or JSON config file (see agui_gateway.server.config).",
)
@click.option("--insecure", is_flag=True, help="Allow listening beyond loopback without bearer tokens.")
@click.option(
    "--fsync",
    type=click.Choice(["always", "interval", "never"]),
    default=None,
    help="When appends reach the disk (default always: nothing acknowledged is lost).",
)
@click.option("--heartbeat", type=float, default=None, help="Seconds between SSE heartbeats (default 15).")
@click.option("--demo-pace", type=float, default=None, help="Demo agent speed factor (0: no pauses).")
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="Let browser pages from ORIGIN (scheme://host[:port], or '*') call the API; repeatable.",
)
@click.option("--inspector", is_flag=True, help="Mount the agui-inspector extra at /ui/inspector.")
@click.option(
    "--store",
    default=None,
    metavar="file|URL",
    help="Where events are stored: 'file' (default, under --data) or redis://[:PASSWORD@]HOST:PORT/DB "
    "(rediss:// for TLS, ...?ssl_ca_certs=CA.pem to trust a private CA; password also from "
    "$AGUI_GATEWAY_REDIS_PASSWORD). A Redis Cluster is detected.",
)
@click.option("--redis-prefix", default=None, help="Prefix of every Redis key (default 'agui').")
@click.option(
    "--lease-ttl", type=float, default=None, help="Seconds a run lease outlives its last renewal (default 10)."
)
@click.option(
    "--replica-id",
    default=None,
    help="A stable identity among the replicas (Redis store): restarted with the same id, the gateway "
    "closes the runs its previous process left open at once, without waiting for their leases to lapse. "
    "Never give two live replicas the same id.",
)
@click.option(
    "--drain-timeout",
    type=float,
    default=None,
    help="On SIGTERM, seconds runs in progress may go on to their end before they are stopped (default 25; "
    "new runs are refused meanwhile, and a second signal stops them at once).",
)
@click.option(
    "--request-timeout",
    type=float,
    default=None,
    help="Seconds a request's head and body may take to arrive (default 30; then 408 and the connection closed).",
)
@click.option(
    "--keep-alive-timeout",
    type=float,
    default=None,
    help="Seconds an idle kept-alive connection stays open between requests (default 5).",
)
@click.option(
    "--max-connections",
    type=int,
    default=None,
    help="Open connections at most (default: what the descriptor limit leaves room for; "
    "beyond, the longest-idle one is closed, or the new one refused with 503).",
)
@click.option(
    "--retention",
    default=None,
    metavar="DURATION",
    help="Delete threads whose last activity is older than this (30d, 12h, 15m, 90s; default off), by a "
    "background sweep; on Redis the thread's keys also expire that long after their last activity. A thread "
    "with a run in progress is never deleted.",
)
@click.option(
    "--store-outage-budget",
    type=float,
    default=None,
    help="Seconds a run rides out a store outage, holding its agent's events until the store answers "
    "(default 60); a longer outage ends the run with a RUN_ERROR (gateway_store_outage).",
)
@click.option(
    "--store-outage-buffer",
    type=int,
    default=None,
    help="Bytes of events one run holds during a store outage, at most (default 16 MiB); beyond, the run "
    "ends with a RUN_ERROR (gateway_store_outage).",
)
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    host: str | None,
    port: int | None,
    data: Path | None,
    agents: tuple[str, ...],
    demo: bool,
    config_file: Path | None,
    insecure: bool,
    fsync: str | None,
    heartbeat: float | None,
    demo_pace: float | None,
    cors_origins: tuple[str, ...],
    inspector: bool,
    store: str | None,
    redis_prefix: str | None,
    lease_ttl: float | None,
    replica_id: str | None,
    drain_timeout: float | None,
    request_timeout: float | None,
    keep_alive_timeout: float | None,
    max_connections: int | None,
    retention: str | None,
    store_outage_budget: float | None,
    store_outage_buffer: int | None,
    log_level: str,
) -> None:
    """Run the gateway: store, fan out and replay the events of AG-UI agents."""
    from agui_gateway.cli.drain import serve_draining
    from agui_gateway.server.app import create_app
    from agui_gateway.upstream.agents import AgentLoadError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_level != "debug":  # one INFO line per upstream request is noise
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        config = build_config(
            config_file=config_file,
            host=host,
            port=port,
            data=data,
            agents=agents,
            demo=demo,
            insecure=insecure,
            fsync=fsync,
            heartbeat=heartbeat,
            demo_pace=demo_pace,
            cors_origins=cors_origins,
            store=store,
            redis_prefix=redis_prefix,
            lease_ttl=lease_ttl,
            replica_id=replica_id,
            drain_timeout=drain_timeout,
            request_timeout=request_timeout,
            keep_alive_timeout=keep_alive_timeout,
            max_connections=max_connections,
            retention=retention,
            store_outage_budget=store_outage_budget,
            store_outage_buffer=store_outage_buffer,
        ).with_overrides(inspector=inspector or None)
        access_note = check_bind(config)
    except (ConfigError, InsecureBindError) as exc:
        raise click.UsageError(str(exc)) from None
    if not config.agents and not config.demo:
        click.echo("warning: no agents configured (use --agent NAME=URL, NAME=module:app or --demo)", err=True)
    log = logging.getLogger("agui_gateway")
    log.info("access: %s", access_note)
    log.info("store: %s", describe_store(config))
    if config.replica_id is not None and not config.redis_url:
        log.warning("replica id %r ignored: the file store serves one process, it has no replicas", config.replica_id)
    if config.redis_url:
        for warning in asyncio.run(_check_redis(config)):
            log.warning("%s", warning)
    if config.cors_origins:
        log.info("cors: browser pages from %s may call the API", ", ".join(config.cors_origins))
    # In-process agents (module:app) import like uvicorn's apps: from the working directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        app = create_app(config)
    except AgentLoadError as exc:
        raise click.UsageError(str(exc)) from exc
    except InspectorUnavailable as exc:
        raise click.UsageError(str(exc)) from None
    if config.inspector:
        log.info("inspector: %s/ (the agui-inspector extra)", INSPECTOR_PATH)
    directory = app.state.gateway.agents
    for name in directory.names():
        endpoint = directory.get(name)
        where = config.agents.get(name, endpoint.url) + ("  (in process)" if endpoint.in_process else "")
        log.info("agent %s -> %s  (POST /agents/%s/run)", name, where, name)
    tune_garbage_collector()
    serve_draining(app, app.state.gateway, host=config.host, port=config.port, log_level=log_level)


async def _check_redis(config: GatewayConfig) -> list[str]:
    """Connect once before serving: an unreachable Redis is a clear error at start, not a
    failure at the first request. Returns the warnings: no persistence, an open-run index
    never built for the threads an older version wrote."""
    from agui_gateway.store.base import StoreError
    from agui_gateway.store.factory import build_store
    from agui_gateway.store.redis import RedisStore

    store = build_store(config)
    assert isinstance(store, RedisStore)
    try:
        await store.open()
    except StoreError as exc:
        raise click.ClickException(f"cannot start on the Redis store: {exc}") from None
    finally:
        await store.close()
    return [w for w in (store.persistence_warning, store.index_warning) if w]
