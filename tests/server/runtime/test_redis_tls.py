"""``agui-gateway serve --store rediss://...``: the gateway as a process on a real TLS-only Redis.

The Redis (the ``tls_redis`` session fixture) has a certificate signed by a test CA
and a password. The gateway stores a run there and replays it, with the password in
the URL, in ``AGUI_GATEWAY_REDIS_PASSWORD``, or in a config file, and with the CA
named in the URL or trusted system-wide. The usual mistakes are clear errors at start,
naming the URL without its password: a CA that did not sign the server's certificate
(or none, so the system's, which did not either), a plain ``redis://`` URL for the TLS
port, a ``rediss://`` URL for a plain port, a misspelt TLS option; and a server that
never answers fails the start instead of hanging it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from support.agents import ScriptedAgent
from support.certificates import untrusted_ca
from support.events import agent_run_events, run_input, user_message
from support.redis_fixtures import TLS_REDIS_PASSWORD
from support.redis_servers import RedisServer
from support.servers import LOOPBACK, REPO_ROOT, GatewayProcess
from support.sse import collect, events_of, has_id
from support.stores import delete_keys

pytestmark = pytest.mark.redis


def stored_count(url: str, prefix: str, thread_id: str) -> int:
    """How many records the thread's stream holds, read straight from the TLS Redis."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.xlen(f"{prefix}:{{{thread_id}}}:log"))
    finally:
        client.close()


@pytest.fixture
def prefix(tls_redis: RedisServer) -> Iterator[str]:
    name = f"agui-tls-gw-{uuid.uuid4().hex}"
    try:
        yield name
    finally:
        delete_keys(tls_redis.url_with(TLS_REDIS_PASSWORD), name)


async def run_and_replay(gw: GatewayProcess, scripted: ScriptedAgent, thread_id: str) -> list[dict[str, Any]]:
    """A run through the gateway, then a fresh replay and a resume of it; the run's events."""
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    events = agent_run_events(thread_id, run_id)
    scripted.script(run_id, events)
    async with httpx.AsyncClient(timeout=30) as client:
        body = run_input(thread_id, run_id, [user_message("u1", "over TLS")])
        run = await collect(client, "POST", f"{gw.url}/agents/scripted/run", json=body)
        ids = [frame.id for frame in run if frame.id is not None]
        assert [e["type"] for e in events_of(run)] == [e["type"] for e in events]
        assert ids == list(range(1, len(events) + 1))
        # A fresh replay (compacted) ends where the run ended; a resume gives the events after it.
        replay = await collect(client, "GET", f"{gw.url}/threads/{thread_id}/events", until=has_id(ids[-1]))
        assert events_of(replay)[-1] == events[-1]
        resumed = await collect(
            client, "GET", f"{gw.url}/threads/{thread_id}/events", params={"after": "3"}, until=has_id(ids[-1])
        )
        assert events_of(resumed) == events_of(run)[3:]
    return events


@pytest.mark.parametrize("password_from", ["url", "environment", "config file"])
async def test_serve_on_rediss_stores_a_run_and_replays_it(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], tls_redis: RedisServer, prefix: str, password_from: str
) -> None:
    scripted, agent_url = agent
    env: dict[str, str] = {}
    if password_from == "url":
        args: tuple[str, ...] = ("--store", tls_redis.url_with(TLS_REDIS_PASSWORD), "--redis-prefix", prefix)
    elif password_from == "environment":
        args = ("--store", tls_redis.url, "--redis-prefix", prefix)
        env["AGUI_GATEWAY_REDIS_PASSWORD"] = TLS_REDIS_PASSWORD
    else:  # the URL with its query, and the password, from a TOML file
        config = tmp_path / "gateway.toml"
        config.write_text(
            f'store = "{tls_redis.url}"\nredis_prefix = "{prefix}"\nredis_password = "{TLS_REDIS_PASSWORD}"\n'
        )
        args = ("--config", str(config))
    thread_id = f"tls-{password_from.replace(' ', '-')}"
    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}, *args, env=env) as gw:
        events = await run_and_replay(gw, scripted, thread_id)
    assert stored_count(tls_redis.url_with(TLS_REDIS_PASSWORD), prefix, thread_id) == len(events)


async def test_a_rediss_url_without_options_trusts_the_system_cas(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], tls_redis: RedisServer, prefix: str
) -> None:
    # OpenSSL's default trust store, here pointed at the test CA by SSL_CERT_FILE as an
    # administrator would install a CA system-wide: no ssl_ca_certs needed.
    assert tls_redis.tls is not None
    scripted, agent_url = agent
    url = f"rediss://:{TLS_REDIS_PASSWORD}@localhost:{tls_redis.port}/0"
    env = {"SSL_CERT_FILE": str(tls_redis.tls.ca)}
    args = ("--store", url, "--redis-prefix", prefix)
    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}, *args, env=env) as gw:
        events = await run_and_replay(gw, scripted, "tls-system-cas")
    assert stored_count(tls_redis.url_with(TLS_REDIS_PASSWORD), prefix, "tls-system-cas") == len(events)


def serve_fails(*args: str) -> str:
    """Run ``agui-gateway serve`` expecting it to refuse to start; its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", "from agui_gateway.cli.main import main; main()", "serve", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard: the start must fail on its own
        check=False,
    )
    assert result.returncode != 0, result.stderr
    assert TLS_REDIS_PASSWORD not in result.stdout + result.stderr
    return result.stderr


@pytest.mark.parametrize("trusting", ["another CA", "the system's CAs"])
def test_a_server_certificate_not_signed_by_a_trusted_ca_is_a_start_error(
    tmp_path: Path, tls_redis: RedisServer, trusting: str
) -> None:
    if trusting == "another CA":
        url = tls_redis.url_with(TLS_REDIS_PASSWORD, ssl_ca_certs=str(untrusted_ca(tmp_path)))
    else:  # no ssl_ca_certs: the system's trust store decides, and it does not know the test CA
        url = f"rediss://:{TLS_REDIS_PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    stderr = serve_fails("--store", url, "--data", str(tmp_path / "data"))
    assert f"cannot reach Redis at {url.replace(TLS_REDIS_PASSWORD, '***')}" in stderr
    assert "CERTIFICATE_VERIFY_FAILED" in stderr and "ssl_ca_certs=/path/to/ca.pem" in stderr


def test_a_plain_url_for_the_tls_port_is_a_start_error(tmp_path: Path, tls_redis: RedisServer) -> None:
    url = f"redis://:{TLS_REDIS_PASSWORD}@127.0.0.1:{tls_redis.port}/0"
    stderr = serve_fails("--store", url, "--data", str(tmp_path / "data"))
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{tls_redis.port}/0" in stderr
    assert "use a rediss:// URL" in stderr


def test_a_tls_url_for_a_plain_port_is_a_start_error(tmp_path: Path, redis_url: str) -> None:
    plain = urlsplit(redis_url)
    url = f"rediss://:{TLS_REDIS_PASSWORD}@{plain.hostname}:{plain.port}/0"
    stderr = serve_fails("--store", url, "--data", str(tmp_path / "data"))
    assert f"cannot reach Redis at rediss://:***@{plain.hostname}:{plain.port}/0" in stderr
    assert "if the server does not speak TLS, use a redis:// URL" in stderr


def test_a_server_that_never_answers_is_a_start_error(tmp_path: Path) -> None:
    # The kernel completes the TCP handshake of a listening socket nobody reads: the
    # connection is made, and no answer ever comes.
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        stderr = serve_fails("--store", f"redis://:{TLS_REDIS_PASSWORD}@{LOOPBACK}:{port}/0")
    assert f"cannot reach Redis at redis://:***@{LOOPBACK}:{port}/0: Timeout reading" in stderr


def test_a_typo_in_a_tls_option_is_a_usage_error(tmp_path: Path, tls_redis: RedisServer) -> None:
    url = tls_redis.url_with(TLS_REDIS_PASSWORD).replace("ssl_ca_certs", "ssl_ca_cert")
    stderr = serve_fails("--store", url)
    assert "unknown option ssl_ca_cert in the Redis URL" in stderr and "ssl_ca_certs" in stderr
