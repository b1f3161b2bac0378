"""Session-wide Redis fixtures: a single server, a local 3-node cluster and a TLS server, each started once.

Registered as a pytest plugin in conftest.py. Without a ``redis-server`` binary the
Redis tests are skipped, unless ``CI`` is set, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

from agui_gateway.store.redis.connect import connect
from support.certificates import Certificates, make_certificates
from support.redis_servers import RedisServer, RedisUnavailable, _in_ci, cluster, free_redis_port, single_server
from support.stores import delete_keys


def unavailable(exc: Exception) -> NoReturn:
    """No Redis could be had: a failure under CI (the set-up must provide one), else a skip."""
    message = f"no Redis for the tests: {exc}"
    if _in_ci():
        pytest.fail(f"CI is set but {message}", pytrace=False)
    pytest.skip(message)


@contextmanager
def private_redis(directory: Path, *extra: str, tls: Certificates | None = None) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own on a free port (``extra``: its settings), stopped
    afterwards; :func:`unavailable` when none can start."""
    try:
        server = RedisServer(directory, free_redis_port(), *extra, tls=tls)
    except RedisUnavailable as exc:
        unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A single Redis: ``AGUI_TEST_REDIS_URL`` when set, else a private server."""
    configured = os.environ.get("AGUI_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    with ExitStack() as stack:
        try:
            url = stack.enter_context(single_server())
        except RedisUnavailable as exc:
            unavailable(exc)
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A private 3-node Redis Cluster, started once per session."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(cluster())
        except RedisUnavailable as exc:
            unavailable(exc)
        yield url


# The password of the TLS server: TLS and a password together, as managed Redis offers them.
TLS_REDIS_PASSWORD = "tls-redis-s3cret"


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis on a TLS port only, its certificate signed by a test CA, with a
    password (``TLS_REDIS_PASSWORD``); a client certificate is optional. Its URLs:
    ``tls_redis.url_with(TLS_REDIS_PASSWORD)``, which trusts the test CA."""
    directory = tmp_path_factory.mktemp("tls-redis")
    certificates = make_certificates(directory / "certificates")
    settings = ("--requirepass", TLS_REDIS_PASSWORD, "--tls-auth-clients", "optional")
    with private_redis(directory / "redis", *settings, tls=certificates) as server:
        yield server


@pytest.fixture(scope="session")
def tls_redis_cluster_url(tls_redis: RedisServer) -> Iterator[str]:
    """A private 3-node Redis Cluster on TLS only (certificates of the ``tls_redis`` CA);
    its URL trusts that CA."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(cluster(tls=tls_redis.tls))
        except RedisUnavailable as exc:
            unavailable(exc)
        yield url


@pytest.fixture(params=["single", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """The single server, then the cluster: for tests that must pass on both."""
    name = "redis_url" if request.param == "single" else "redis_cluster_url"
    return str(request.getfixturevalue(name))


async def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (on every node of a cluster)."""
    client = await connect(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for key in keys:  # one by one: keys of a cluster live in different slots
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
def store_overrides(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """GatewayConfig fields selecting the store: the file store, then Redis (a key prefix
    of this test's own, deleted afterwards). Gateway fixtures take ``**store_overrides``."""
    if request.param == "file":
        yield {}
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"agui-gw-test-{uuid.uuid4().hex}"
    try:
        yield {"redis_url": url, "redis_prefix": prefix}
    finally:
        delete_keys(url, prefix)


@pytest.fixture
async def redis_prefix(any_redis_url: str) -> AsyncIterator[str]:
    """A key prefix unique to this test (on the single server or the cluster); cleaned up after."""
    prefix = f"agui-test-{uuid.uuid4().hex}"
    try:
        yield prefix
    finally:
        await delete_prefix(any_redis_url, prefix)
