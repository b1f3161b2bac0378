"""Connecting to Redis: one URL for a single server or a Cluster, errors that name it safely.

``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS). A password given
apart from the URL (the environment, a config file) is used when the URL has none.
A ``rediss://`` URL verifies the server's certificate (against the system's trusted
CAs unless its query names others, see :data:`TLS_URL_OPTIONS`) and its host name.
Whether the server is a Cluster node is asked of the server itself (``INFO
cluster``), so the same URL and the same code serve both: every key of a thread
carries the hash tag ``{thread}``, so each command and script touches one slot.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agui_gateway.store.base import StoreError

# Fail fast when Redis is down instead of hanging a request on the OS connect timeout.
# (A server that accepts and never answers fails a command after redis-py's own read
# timeout, 5 s by default since redis-py 8.0: the start does not hang on it either.)
CONNECT_TIMEOUT_S = 5.0
# The query parameters a rediss:// URL may carry: redis-py's TLS options, which it takes
# from the URL and hands to its connections. Any other name is refused when the URL is
# read: redis-py would pass it on and fail only at the first connection, with a TypeError.
TLS_URL_OPTIONS = (
    "ssl_ca_certs",  # a PEM file of the CA(s) to trust instead of the system's
    "ssl_ca_path",  # a directory of CA certificates (c_rehash layout)
    "ssl_cert_reqs",  # required (the default) | optional | none (no verification at all)
    "ssl_check_hostname",  # true (the default) | false: the certificate must name the URL's host
    "ssl_certfile",  # the client's certificate, for a server that verifies clients (mutual TLS)
    "ssl_keyfile",  # the client certificate's private key
    "ssl_password",  # the password of an encrypted ssl_keyfile
)
_SECRET_URL_OPTIONS = ("ssl_password",)
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
    """The URL with its passwords replaced by ``***`` (for logs and error messages)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, _redact_query(parts.query), parts.fragment))


def _redact_query(query: str) -> str:
    # Edited in place rather than re-encoded, so that the other values read as given.
    pieces = []
    for piece in query.split("&") if query else []:
        name, sep, _value = piece.partition("=")
        pieces.append(f"{name}=***" if sep and name in _SECRET_URL_OPTIONS else piece)
    return "&".join(pieces)


def check_url(url: str) -> None:
    """Raise ValueError unless ``url`` is a redis:// or rediss:// URL with a host, and any
    query parameters are TLS options of a rediss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"not a Redis URL: {redact_url(url)!r} (expected redis://HOST:PORT/DB or rediss://...)")
    names = sorted({name for name, _value in parse_qsl(parts.query, keep_blank_values=True)})
    unknown = [name for name in names if name not in TLS_URL_OPTIONS]
    if unknown:
        raise ValueError(
            f"unknown option {', '.join(unknown)} in the Redis URL {redact_url(url)!r}; "
            f"a rediss:// URL takes {', '.join(TLS_URL_OPTIONS)}"
        )
    if names and parts.scheme == "redis":
        raise ValueError(f"TLS options ({', '.join(names)}) need a rediss:// URL, not {redact_url(url)!r}")


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
        raise StoreError(f"cannot reach Redis at {redact_url(url)}: {exc}{_hint(url, exc)}") from exc
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
        raise StoreError(f"cannot reach the Redis Cluster at {redact_url(url)}: {exc}{_hint(url, exc)}") from exc
    return cluster


def _hint(url: str, exc: BaseException) -> str:
    """What to change when the error is one of the usual mistakes of a Redis URL."""
    causes = _chain(exc)
    tls = urlsplit(url).scheme == "rediss"
    reset = any(isinstance(cause, ConnectionResetError) for cause in causes)
    # OpenSSL's name for what went wrong, e.g. CERTIFICATE_VERIFY_FAILED
    reasons = {cause.reason for cause in causes if isinstance(cause, ssl.SSLError)}
    if "CERTIFICATE_VERIFY_FAILED" in reasons:
        return (
            " (the server's certificate did not verify: name the CA that signed it, "
            "rediss://HOST:PORT/DB?ssl_ca_certs=/path/to/ca.pem, and a host the certificate names)"
        )
    if isinstance(exc, aioredis.AuthenticationError):
        return " (the password is missing or wrong)"
    if not tls and reset:
        return " (a Redis that only speaks TLS drops plain connections: if so, use a rediss:// URL)"
    # The server's alert, or its dropping the connection when the alert lost the race.
    if "TLSV13_ALERT_CERTIFICATE_REQUIRED" in reasons or (tls and reset):
        return (
            " (a Redis that verifies its clients refuses one without a certificate: "
            "if so, give ssl_certfile and ssl_keyfile in the URL)"
        )
    if tls and ("WRONG_VERSION_NUMBER" in reasons or isinstance(exc, aioredis.TimeoutError)):
        return " (no TLS handshake: if the server does not speak TLS, use a redis:// URL)"
    return ""


def _chain(exc: BaseException) -> list[BaseException]:
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    return causes


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
