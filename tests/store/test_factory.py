"""Choosing the store: ``--store`` / ``store =`` / ``AGUI_GATEWAY_STORE``, the Redis password
kept out of URLs and logs, the key prefix, and a password-protected Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.redis_fixtures import private_redis
from support.redis_servers import RedisServer

from agui_gateway.cli.serve import build_config
from agui_gateway.server.config import ConfigError, load_config
from agui_gateway.store.base import StoreError
from agui_gateway.store.factory import build_store, describe_store, parse_store
from agui_gateway.store.file import FileStore
from agui_gateway.store.redis import RedisStore
from agui_gateway.store.redis.connect import redact_url

# build_config's arguments when no flag but the store's is given.
NO_FLAGS: dict[str, Any] = {
    "host": None,
    "port": None,
    "data": None,
    "agents": (),
    "demo": False,
    "insecure": False,
    "fsync": None,
    "heartbeat": None,
    "demo_pace": None,
}


def test_store_values() -> None:
    assert parse_store("file") is None and parse_store("") is None
    assert parse_store("redis://h:6379/0") == "redis://h:6379/0"
    assert parse_store(" rediss://:pw@h:6380/1 ") == "rediss://:pw@h:6380/1"
    for bad in ("http://h/", "redis://", "h:6379", "mysql://h/db"):
        with pytest.raises(ValueError, match="not a Redis URL"):
            parse_store(bad)


def test_passwords_never_show() -> None:
    assert redact_url("redis://:s3cret@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("rediss://user:s3cret@[::1]:6380/2") == "rediss://user:***@[::1]:6380/2"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
    config = load_config(None, {"AGUI_GATEWAY_STORE": "redis://:s3cret@h:1/0"})
    assert "s3cret" not in describe_store(config)
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"AGUI_GATEWAY_STORE": "http://:s3cret@h/"})
    assert "s3cret" not in str(caught.value)


def test_tls_options_ride_in_the_url_query_from_every_source(tmp_path: Path) -> None:
    url = "rediss://:s3cret@h:6380/0?ssl_ca_certs=/etc/redis/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
    path = tmp_path / "gateway.toml"
    path.write_text(f'store = "{url}"\n')
    for config in (
        load_config(None, {"AGUI_GATEWAY_STORE": url}),
        load_config(None, {"AGUI_GATEWAY_REDIS_URL": url}),
        load_config(path, {}),
        build_config(config_file=None, store=url, **NO_FLAGS),
    ):
        assert config.redis_url == url
        assert describe_store(config).startswith(
            "redis rediss://:***@h:6380/0?ssl_ca_certs=/etc/redis/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem "
        )
    # The password of an encrypted client key is masked like the Redis password.
    assert redact_url("rediss://h:1/0?ssl_keyfile=/k.pem&ssl_password=keypw") == (
        "rediss://h:1/0?ssl_keyfile=/k.pem&ssl_password=***"
    )


def test_a_url_option_that_is_not_a_tls_option_is_refused_when_read() -> None:
    with pytest.raises(ConfigError, match=r"unknown option ssl_ca_cert in the Redis URL.*takes ssl_ca_certs") as caught:
        load_config(None, {"AGUI_GATEWAY_STORE": "rediss://:s3cret@h:1/0?ssl_ca_cert=/ca.pem"})
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"TLS options \(ssl_ca_certs\) need a rediss:// URL"):
        load_config(None, {"AGUI_GATEWAY_STORE": "redis://h:1/0?ssl_ca_certs=/ca.pem"})
    with pytest.raises(ValueError, match="unknown option password"):
        RedisStore("rediss://h:1/0?password=x")


def test_the_environment_the_config_file_and_the_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "AGUI_GATEWAY_STORE": "redis://h:1/0",
        "AGUI_GATEWAY_REDIS_PASSWORD": "pw-from-env",
        "AGUI_GATEWAY_REDIS_PREFIX": "team-a",
        "AGUI_GATEWAY_LEASE_TTL": "4.5",
        "AGUI_GATEWAY_REPLICA_ID": "gw-env",
    }
    config = load_config(None, env)
    assert (config.redis_url, config.redis_password, config.redis_prefix, config.lease_ttl_s, config.replica_id) == (
        "redis://h:1/0",
        "pw-from-env",
        "team-a",
        4.5,
        "gw-env",
    )
    store = build_store(config)
    assert isinstance(store, RedisStore) and store.prefix == "team-a" and store.replica_id == "gw-env"
    assert "replica 'gw-env'" in describe_store(config)
    path = tmp_path / "gateway.toml"
    path.write_text('store = "rediss://h:2/1"\nredis_prefix = "p"\nredis_password = "pw"\nreplica_id = "gw-1"\n')
    from_file = load_config(path, {})
    assert (from_file.redis_url, from_file.redis_prefix, from_file.redis_password, from_file.replica_id) == (
        "rediss://h:2/1",
        "p",
        "pw",
        "gw-1",
    )
    with pytest.raises(ConfigError, match="key prefix"):
        load_config(None, {"AGUI_GATEWAY_REDIS_PREFIX": "a{b}"})
    for bad in ("", "two words", "a{b}", "x" * 129):
        with pytest.raises(ConfigError, match="replica id"):
            load_config(None, {"AGUI_GATEWAY_REPLICA_ID": bad})
    # Without an id, each store (each process) is a replica of its own.
    anonymous = [build_store(load_config(None, {"AGUI_GATEWAY_STORE": "redis://h:1/0"})) for _ in range(2)]
    assert all(isinstance(s, RedisStore) for s in anonymous)
    assert len({s.replica_id for s in anonymous if isinstance(s, RedisStore)}) == 2
    # The flags win, and --store file replaces a Redis URL of the file or the environment.
    monkeypatch.setenv("AGUI_GATEWAY_STORE", "redis://h:1/0")
    common = {**NO_FLAGS, "data": tmp_path / "d"}
    flagged = build_config(config_file=path, store="file", **common)
    assert flagged.redis_url is None and isinstance(build_store(flagged), FileStore)
    flagged = build_config(config_file=None, store="redis://x:3/0", redis_prefix="q", lease_ttl=2, **common)
    assert (flagged.redis_url, flagged.redis_prefix, flagged.lease_ttl_s) == ("redis://x:3/0", "q", 2)
    flagged = build_config(config_file=path, replica_id="gw-flag", **common)  # type: ignore[arg-type]
    assert flagged.replica_id == "gw-flag"  # the flag wins over the file


@pytest.fixture
def protected_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with private_redis(tmp_path / "redis", "--requirepass", "hunter2-redis") as server:
        yield server


@pytest.mark.redis
async def test_a_password_given_apart_from_the_url(protected_redis: RedisServer) -> None:
    url = protected_redis.url  # no password in it
    without = RedisStore(url, prefix=f"t-{uuid.uuid4().hex}")
    with pytest.raises(StoreError, match=r"redis://127\.0\.0\.1"):
        await without.open()
    await without.close()
    store = RedisStore(url, prefix=f"t-{uuid.uuid4().hex}", password="hunter2-redis")
    await store.open()
    try:
        assert await store.last_seq("t") == 0
    finally:
        await store.close()
    in_url = url.replace("redis://", "redis://:hunter2-redis@")
    store = RedisStore(in_url, prefix=f"t-{uuid.uuid4().hex}", password="wrong")  # the URL's wins
    await store.open()
    await store.close()
