"""The gateway tests on either store: which store a test gateway runs on, and what it stored.

``store_overrides`` (a fixture in ``support.redis_fixtures``) gives the GatewayConfig
fields of the file store, then of Redis; :func:`stored_log` reads a thread's records
from the backing store itself (the JSONL file, or the Redis stream), not through the
gateway under test.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis

from support.servers import RunningGateway


def stored_bytes(gw: RunningGateway, thread_id: str) -> bytes:
    """A thread's stored lines (each with its newline), straight from the backing store."""
    config = gw.gateway.config
    if not config.redis_url:
        path = config.data_dir / "threads" / thread_id / "log.jsonl"
        return path.read_bytes() if path.exists() else b""
    client = redis.Redis.from_url(config.redis_url)
    try:
        entries = client.xrange(f"{config.redis_prefix}:{{{thread_id}}}:log")
    finally:
        client.close()
    return b"".join(fields[b"r"] + b"\n" for _, fields in entries)


def stored_log(gw: RunningGateway, thread_id: str) -> list[dict[str, Any]]:
    """The stored records of a thread, from whichever store the gateway runs on."""
    return [orjson.loads(line) for line in stored_bytes(gw, thread_id).splitlines() if line]


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` of a single Redis."""
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()
