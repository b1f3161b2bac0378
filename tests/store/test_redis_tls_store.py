"""The Redis store over TLS (``rediss://``) against a real TLS-only redis-server.

The whole store contract runs over TLS with a password, and on a 3-node Redis Cluster
over TLS; the servers' certificate is signed by a test CA that the URL names
(``ssl_ca_certs``). A server that verifies its clients (mutual TLS) takes the client
certificate given in the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.redis_fixtures import TLS_REDIS_PASSWORD, delete_prefix, private_redis
from support.redis_servers import RedisServer

from agui_gateway.store.base import StoreError
from agui_gateway.store.redis import RedisStore
from store.contract import MakeStore, StoreContract, new, opened_stores

pytestmark = pytest.mark.redis


class TestRedisStoreOverTls(StoreContract):
    @pytest.fixture
    async def make_store(self, tls_redis: RedisServer) -> AsyncIterator[MakeStore]:
        url = tls_redis.url_with(TLS_REDIS_PASSWORD)
        prefix = f"agui-tls-{uuid.uuid4().hex}"
        try:
            async with opened_stores(lambda: RedisStore(url, prefix=prefix)) as make:
                yield make
        finally:
            await delete_prefix(url, prefix)


class TestRedisClusterStoreOverTls(StoreContract):
    @pytest.fixture
    async def make_store(self, tls_redis_cluster_url: str) -> AsyncIterator[MakeStore]:
        prefix = f"agui-tls-cluster-{uuid.uuid4().hex}"
        try:
            async with opened_stores(lambda: RedisStore(tls_redis_cluster_url, prefix=prefix)) as make:
                yield make
        finally:
            await delete_prefix(tls_redis_cluster_url, prefix)


async def test_the_password_given_apart_from_a_rediss_url(tls_redis: RedisServer) -> None:
    prefix = f"agui-tls-{uuid.uuid4().hex}"
    store = RedisStore(tls_redis.url, prefix=prefix, password=TLS_REDIS_PASSWORD)
    await store.open()
    try:
        assert [r.seq for r in await store.append("t", [new(1), new(2)])] == [1, 2]
    finally:
        await store.close()
        await delete_prefix(tls_redis.url_with(TLS_REDIS_PASSWORD), prefix)
    without = RedisStore(tls_redis.url, prefix=prefix)
    with pytest.raises(StoreError, match="password is missing or wrong"):
        await without.open()
    await without.close()


@pytest.fixture
def mutual_tls_redis(tmp_path: Path, tls_redis: RedisServer) -> Iterator[RedisServer]:
    """A TLS Redis that requires a client certificate signed by the test CA."""
    assert tls_redis.tls is not None
    with private_redis(tmp_path / "redis", "--tls-auth-clients", "yes", tls=tls_redis.tls) as server:
        yield server


async def test_mutual_tls_takes_the_client_certificate_from_the_url(mutual_tls_redis: RedisServer) -> None:
    certificates = mutual_tls_redis.tls
    assert certificates is not None
    prefix = f"agui-mtls-{uuid.uuid4().hex}"
    anonymous = RedisStore(mutual_tls_redis.url, prefix=prefix)
    with pytest.raises(StoreError, match="give ssl_certfile and ssl_keyfile") as caught:
        await anonymous.open()
    await anonymous.close()
    assert f"127.0.0.1:{mutual_tls_redis.port}" in str(caught.value)
    url = mutual_tls_redis.url_with(
        ssl_certfile=str(certificates.client_cert), ssl_keyfile=str(certificates.client_key)
    )
    store = RedisStore(url, prefix=prefix)
    await store.open()
    try:
        await store.append("t", [new(1)])
        assert await store.last_seq("t") == 1
    finally:
        await store.close()
