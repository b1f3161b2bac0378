"""Connecting to Redis: one URL for a single server or a Cluster, errors that name it safely.

``redis://[user:password@]host:port/db`` or ``rediss://`` (TLS). A password given
apart from the URL (the environment, a config file) is used when the URL has none.
Whether the server is a Cluster node is asked of the server itself (``INFO
cluster``), so the same URL and the same code serve both: every key of a thread
carries the hash tag ``{thread}``, so each command and script touches one slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agui_gateway.store.base import StoreError

# Fail fast when Redis is down instead of hanging a request on the OS connect timeout.
CONNECT_TIMEOUT_S = 5.0
RedisClient = aioredis.Redis | RedisCluster
_T = TypeVar("_T")


async def uncancelled(command: Awaitable[_T]) -> _T:
    """Run a Redis command to its end in a task of its own; a cancelled caller returns at once.

    redis-py (8.1, asyncio) turns a cancellation that lands in the middle of a command
    into a lost connection, swallowing the CancelledError: the cancelled task carries
    on (a stream reader whose client left, a lease keeper asked to stop) and may wait
    for a long time. Commands of cancellable callers go through here instead.
    """
    task = asyncio.ensure_future(command)
    task.add_done_callback(_consume)
    return await asyncio.shield(task)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # the caller may be gone: nobody else reads it


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> None:
    """Raise ValueError unless ``url`` is a redis:// or rediss:// URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"not a Redis URL: {redact_url(url)!r} (expected redis://HOST:PORT/DB or rediss://...)")


def _options(url: str, password: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"decode_responses": False, "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if password and urlsplit(url).password is None:
        options["password"] = password
    return options


# Commands share a bounded pool and queue for a connection when all are busy (1,000
# subscribers connecting at once must not open 1,000 connections, nor fail with "too many
# connections"); blocking reads (XREAD BLOCK, one per watched thread) get a client of their own.
COMMAND_CONNECTIONS = 64
CLUSTER_CONNECTIONS_PER_NODE = 1000


async def connect(url: str, password: str | None = None, *, blocking_reads: bool = False) -> RedisClient:
    """An open client for ``url``: a :class:`RedisCluster` when the server is a Cluster node.

    ``blocking_reads``: a client for commands that hold their connection (``XREAD BLOCK``):
    its pool is not bounded, so that they never starve the other commands.
    """
    check_url(url)
    options = _options(url, password)
    if blocking_reads:
        client = aioredis.from_url(url, max_connections=2**31, **options)
    else:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=COMMAND_CONNECTIONS, timeout=None, **options
        )
        client = aioredis.Redis.from_pool(pool)
    try:
        info = await client.info("cluster")
    except (aioredis.RedisError, OSError) as exc:
        await client.aclose()
        raise StoreError(f"cannot reach Redis at {redact_url(url)}: {exc}") from exc
    if not info.get("cluster_enabled"):
        return client
    await client.aclose()
    # A cluster has database 0 only; the path of the URL is ignored there.
    parts = urlsplit(url)
    cluster_url = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
    cluster = RedisCluster.from_url(cluster_url, max_connections=CLUSTER_CONNECTIONS_PER_NODE, **options)
    try:
        await cluster.initialize()
    except (aioredis.RedisError, OSError) as exc:
        await cluster.aclose()
        raise StoreError(f"cannot reach the Redis Cluster at {redact_url(url)}: {exc}") from exc
    return cluster


async def persistence_warning(client: RedisClient) -> str | None:
    """A warning when the server keeps data in memory only (neither AOF nor RDB snapshots)."""
    config: dict[Any, Any] = {}
    try:
        config.update(await client.config_get("save"))
        config.update(await client.config_get("appendonly"))
    except (aioredis.RedisError, OSError):
        return None  # CONFIG is often disabled on managed Redis: nothing to tell
    save = config.get(b"save", config.get("save", b""))
    appendonly = config.get(b"appendonly", config.get("appendonly", b"no"))
    if isinstance(save, bytes):
        save = save.decode()
    if isinstance(appendonly, bytes):
        appendonly = appendonly.decode()
    if str(save).strip() or appendonly == "yes":
        return None
    return (
        "Redis has no persistence (no AOF, no RDB snapshots): stored events survive only while "
        "the Redis server runs; enable appendonly (appendfsync everysec or always) for durability"
    )
