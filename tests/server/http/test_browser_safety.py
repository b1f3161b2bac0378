"""Browser-facing safety: a web page the user has open cannot drive a local gateway.

Real requests on loopback, shaped as a browser sends them for a foreign page: a
``text/plain`` cross-origin POST (no preflight: CSRF), a foreign ``Host`` (DNS
rebinding). And with tokens: authentication comes before the body is read and
before the agent name is looked up (no agent-name enumeration).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent
from support.events import run_input
from support.servers import RunningGateway, serve_gateway

from agui_gateway.server.config import GatewayConfig, parse_tokens

EVIL = "http://evil.example"
TOKEN = "writer-token-1234"


@pytest.fixture
def open_gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    """The loopback default: no tokens."""
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data", agents={"scripted": agent[1]})) as gw:
        yield gw


@pytest.fixture
def token_gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    config = GatewayConfig(
        data_dir=tmp_path / "data", agents={"scripted": agent[1]}, tokens=parse_tokens(f"{TOKEN}:write:*")
    )
    with serve_gateway(config) as gw:
        yield gw


def _raw_status(url: str, headers: bytes) -> int:
    """The status of a POST whose headers promise a body that is never sent."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /agents/scripted/run HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + headers
            + b"\r\n{"
        )
        return int(sock.recv(4096).split(b" ", 2)[1])


def _body(thread_id: str) -> bytes:
    return orjson.dumps(run_input(thread_id, "r1"))


async def test_a_cross_origin_simple_post_starts_nothing(open_gateway: RunningGateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=open_gateway.url, timeout=10) as client:
        # What a foreign page's <form> or fetch(no-cors) sends: text/plain, its Origin.
        csrf = await client.post(
            "/agents/scripted/run", content=_body("csrf"), headers={"content-type": "text/plain", "origin": EVIL}
        )
        assert csrf.status_code == 403 and "origin" in csrf.json()["error"]
        # Even with a JSON content type (which needs a preflight the gateway never grants).
        json_csrf = await client.post(
            "/agents/scripted/run",
            content=_body("csrf"),
            headers={"content-type": "application/json", "origin": EVIL},
        )
        assert json_csrf.status_code == 403
        # Without an Origin (not a browser), a non-JSON body is still refused.
        plain = await client.post("/agents/scripted/run", content=_body("csrf"), headers={"content-type": "text/plain"})
        assert plain.status_code == 415 and "application/json" in plain.json()["error"]
        form = await client.post("/agents/scripted/run", data={"threadId": "csrf"})
        assert form.status_code == 415
        stop = await client.post("/threads/csrf/stop", headers={"origin": EVIL})
        assert stop.status_code == 403
        # A body-less POST without a content type (curl -X POST .../stop) is fine.
        assert (await client.post("/threads/csrf/stop")).status_code == 409
    assert not (tmp_path / "data" / "threads" / "csrf").exists()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.168.1.5", "127.0.0.1.evil.example"])
async def test_a_foreign_host_is_refused_without_tokens(open_gateway: RunningGateway, host: str) -> None:
    """DNS rebinding: the page's name now points at 127.0.0.1, so its reads look same-origin."""
    async with httpx.AsyncClient(base_url=open_gateway.url, timeout=10) as client:
        for path in ("/threads", "/threads/t/events", "/threads/t/snapshot", "/metrics"):
            response = await client.get(path, headers={"host": host})
            assert response.status_code == 403 and "loopback" in response.json()["error"], path


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "127.1.2.3", "[::1]:{port}"])
async def test_loopback_hosts_and_the_gateways_own_origin_are_served(open_gateway: RunningGateway, host: str) -> None:
    port = open_gateway.url.rsplit(":", 1)[1]
    host = host.format(port=port)
    async with httpx.AsyncClient(base_url=open_gateway.url, timeout=10) as client:
        assert (await client.get("/threads", headers={"host": host})).status_code == 200
        own = await client.get("/threads", headers={"host": host, "origin": f"http://{host}"})
        assert own.status_code == 200


async def test_a_configured_cors_origin_may_call_without_tokens(tmp_path: Path) -> None:
    config = GatewayConfig(data_dir=tmp_path / "data", cors_origins=("http://ui.example:5173",))
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            allowed = await client.get("/threads", headers={"origin": "http://ui.example:5173"})
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "http://ui.example:5173"
            assert (await client.get("/threads", headers={"origin": EVIL})).status_code == 403


async def test_without_a_token_agent_names_cannot_be_enumerated(token_gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=token_gateway.url, timeout=10) as client:
        known = await client.post("/agents/scripted/run", json=run_input("t", "r"))
        unknown = await client.post("/agents/nobody/run", json=run_input("t", "r"))
        assert known.status_code == unknown.status_code == 401
        assert known.json() == unknown.json()
        unknown_connect = await client.post("/agents/nobody/connect", json=run_input("t", "r"))
        assert unknown_connect.status_code == 401
        # With a valid token the unknown agent is a 404.
        auth = {"authorization": f"Bearer {TOKEN}"}
        found = await client.post("/agents/nobody/run", json=run_input("t", "r"), headers=auth)
        assert found.status_code == 404


async def test_auth_comes_before_the_body_is_read(token_gateway: RunningGateway, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=token_gateway.url, timeout=10) as client:
        # A declared 1 TB body: without a token the answer is 401, not 413 (nothing read).
        assert _raw_status(token_gateway.url, b"content-length: 1000000000000\r\n") == 401
        garbage = await client.post(
            "/agents/scripted/run", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert garbage.status_code == 401
        # With tokens a non-loopback Host is fine (the token is the access control).
        with_token = await client.get(
            "/threads", headers={"host": "gateway.example", "authorization": f"Bearer {TOKEN}"}
        )
        assert with_token.status_code == 200
    assert not (tmp_path / "data" / "threads").exists() or not any((tmp_path / "data" / "threads").iterdir())
