"""The store room's factory: which store a ``--store`` / ``store =`` value names, and building it.

``file`` (the default: the embedded JSONL store under ``data``), or a Redis URL
``redis://[:PASSWORD@]HOST:PORT/DB`` / ``rediss://...`` (TLS; its query may carry TLS
options such as ``?ssl_ca_certs=/path/ca.pem``, see ``store/redis/connect.py``). The
Redis password may also come from ``AGUI_GATEWAY_REDIS_PASSWORD`` or the config file's
``redis_password``, so it need not sit in a URL on a command line. Error messages
and logs show the URL with its passwords replaced by ``***``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

from agui_gateway.store.base import ThreadStore

FILE_STORE = "file"


class StoreSettings(Protocol):
    """The settings that choose and configure the store (the gateway's configuration has them)."""

    @property
    def redis_url(self) -> str | None: ...
    @property
    def redis_prefix(self) -> str: ...
    @property
    def redis_password(self) -> str | None: ...
    @property
    def lease_ttl_s(self) -> float: ...
    @property
    def replica_id(self) -> str | None: ...
    @property
    def retention_s(self) -> float | None: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def fsync(self) -> Literal["always", "interval", "never"]: ...
    @property
    def fsync_interval_ms(self) -> int: ...


def parse_store(value: Any) -> str | None:
    """The Redis URL a ``store`` setting names, or None for the file store; ValueError otherwise."""
    text = str(value).strip()
    if text in ("", FILE_STORE):
        return None
    from agui_gateway.store.redis.connect import check_url

    check_url(text)
    return text


def describe_store(config: StoreSettings) -> str:
    """One line for the start-up log (no password)."""
    if config.redis_url:
        from agui_gateway.store.redis.connect import redact_url

        replica = f", replica {config.replica_id!r}" if config.replica_id is not None else ""
        return (
            f"redis {redact_url(config.redis_url)} "
            f"(key prefix {config.redis_prefix!r}, lease {config.lease_ttl_s}s{replica})"
        )
    return f"file {config.data_dir} (fsync={config.fsync})"


def build_store(config: StoreSettings) -> ThreadStore:
    if config.redis_url:
        from agui_gateway.store.redis import RedisStore

        return RedisStore(
            config.redis_url,
            prefix=config.redis_prefix,
            password=config.redis_password,
            lease_ttl_s=config.lease_ttl_s,
            replica_id=config.replica_id,
            retention_s=config.retention_s,
        )
    from agui_gateway.store.file import FileStore

    return FileStore(config.data_dir, fsync=config.fsync, fsync_interval_ms=config.fsync_interval_ms)
