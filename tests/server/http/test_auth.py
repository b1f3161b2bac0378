"""Access control: bind policy, bearer tokens scoped by thread prefix and read/write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import collect, events_of, has_id

from agui_gateway.cli.main import main
from agui_gateway.server.config import ConfigError, GatewayConfig, load_config, parse_tokens
from agui_gateway.server.errors import InsecureBindError
from agui_gateway.server.http.auth import check_bind

READER = "reader-token-aaaa"
WRITER = "writer-token-bbbb"
ADMIN = "admin-token-cccc"


@pytest.fixture
def gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    tokens = parse_tokens(f"{READER}:read:team-a-,shared. {WRITER}:write:team-a- {ADMIN}:write:*")
    with serve_scripted_gateway(tmp_path / "data", agent[1], tokens=tokens) as gw:
        yield gw


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_tokens_are_scoped_by_prefix_and_access(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    scripted.script("w1", agent_run_events("team-a-1", "w1", tools=0))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        body = run_input("team-a-1", "w1")
        missing = await client.post("/agents/scripted/run", json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        unknown = await client.post("/agents/scripted/run", json=body, headers=bearer("nope-nope-nope"))
        assert unknown.status_code == 401
        read_only = await client.post("/agents/scripted/run", json=body, headers=bearer(READER))
        assert read_only.status_code == 403 and "write" in read_only.json()["error"]
        elsewhere = await client.post("/agents/scripted/run", json=run_input("team-b-1", "x"), headers=bearer(WRITER))
        assert elsewhere.status_code == 403
        frames = await collect(client, "POST", "/agents/scripted/run", json=body, headers=bearer(WRITER))
        assert events_of(frames)[-1]["type"] == "RUN_FINISHED"

        # Reading: the reader's prefixes, the writer's (write includes read), the admin's '*'.
        for token in (READER, WRITER, ADMIN):
            got = await client.get("/threads/team-a-1/snapshot", headers=bearer(token))
            assert got.status_code == 200, token
        assert (await client.get("/threads/team-a-1/snapshot")).status_code == 401
        assert (await client.get("/threads/team-b-1/snapshot", headers=bearer(READER))).status_code == 403
        assert (await client.get("/threads/shared.x/snapshot", headers=bearer(WRITER))).status_code == 403
        assert (await client.post("/threads/team-a-1/stop", headers=bearer(READER))).status_code == 403
        # EventSource cannot set headers: the token may come as ?access_token=.
        frames = await collect(
            client, "GET", "/threads/team-a-1/events", params={"access_token": READER}, until=has_id(1)
        )
        assert frames
        denied = await client.get("/threads/team-a-1/events", params={"access_token": "wrong-wrong-wrong"})
        assert denied.status_code == 401
        # Listings show only what the token may read.
        listing = await client.get("/threads", headers=bearer(READER))
        assert [t["threadId"] for t in listing.json()["threads"]] == ["team-a-1"]
        assert (await client.get("/threads")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers=bearer(READER))).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


def test_bind_policy() -> None:
    assert "loopback" in check_bind(GatewayConfig(host="127.0.0.1"))
    assert "loopback" in check_bind(GatewayConfig(host="::1"))
    with pytest.raises(InsecureBindError, match="tokens"):
        check_bind(GatewayConfig(host="0.0.0.0"))
    assert "WARNING" in check_bind(GatewayConfig(host="0.0.0.0", insecure=True))
    assert "tokens required" in check_bind(GatewayConfig(host="0.0.0.0", tokens=parse_tokens(f"{ADMIN}:read:*")))


def test_serve_refuses_a_public_bind_without_tokens(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--host", "0.0.0.0", "--data", str(tmp_path), "--demo"], env={"AGUI_GATEWAY_TOKENS": ""}
    )
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_config_precedence_file_env_flags(tmp_path: Path) -> None:
    toml = tmp_path / "gw.toml"
    toml.write_text(
        'host = "0.0.0.0"\nport = 9001\ndata = "d1"\nfsync = "interval"\nheartbeat = 5\n'
        '[agents]\none = "http://127.0.0.1:1/a"\n[timeouts]\nconnect = 2\nread = 30\ntotal = 600\n'
        f'[[tokens]]\ntoken = "{ADMIN}"\naccess = "write"\nthreads = ["*"]\n'
    )
    config = load_config(
        toml,
        {"AGUI_GATEWAY_PORT": "9002", "AGUI_GATEWAY_AGENTS": "two=http://127.0.0.1:2/b"},
        port=9003,
        extra_agents={"three": "http://127.0.0.1:3/c"},
    )
    assert (config.host, config.port, str(config.data_dir), config.fsync) == ("0.0.0.0", 9003, "d1", "interval")
    assert config.heartbeat_s == 5.0
    assert dict(config.agents) == {"two": "http://127.0.0.1:2/b", "three": "http://127.0.0.1:3/c"}
    assert (config.timeouts.connect, config.timeouts.read, config.timeouts.total) == (2, 30, 600)
    assert config.tokens[0].all_threads and config.tokens[0].access == "write"
    as_json = tmp_path / "gw.json"
    as_json.write_text(json.dumps({"tokens": [{"token": READER, "access": "read", "threads": ["a-", "b-"]}]}))
    grant = load_config(as_json).tokens[0]
    assert grant.allows("a-1", "read") and grant.allows("b-2", "read")
    assert not grant.allows("a-1", "write") and not grant.allows("c-1", "read")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"fsync": "sometimes"}, "fsync"),
        ({"port": "eighty"}, "port"),
        ({"agents": {"x": "ftp://nope"}}, "http"),
        ({"tokens": [{"token": "short", "access": "read", "threads": ["*"]}]}, "at least 8"),
        ({"tokens": [{"token": ADMIN, "access": "admin", "threads": ["*"]}]}, "access"),
        ({"tokens": [{"token": ADMIN, "access": "read", "threads": []}]}, "prefix"),
        ({"timeouts": {"connect": 1, "idle": 3}}, "idle"),
        ({"colour": "blue"}, "unknown setting"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, doc: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_tokens_from_environment_in_compact_and_json_form() -> None:
    compact = load_config(None, {"AGUI_GATEWAY_TOKENS": f"{READER}:read:x-;{WRITER}:write:*"}).tokens
    assert [(t.access, t.prefixes) for t in compact] == [("read", ("x-",)), ("write", ("",))]
    as_json = json.dumps([{"token": ADMIN, "access": "write", "threads": "team-"}])
    assert load_config(None, {"AGUI_GATEWAY_TOKENS": as_json}).tokens[0].prefixes == ("team-",)
    with pytest.raises(ConfigError, match="TOKEN:ACCESS:PREFIX"):
        load_config(None, {"AGUI_GATEWAY_TOKENS": "just-a-token-here"})
