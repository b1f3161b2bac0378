"""The HTTP side of the thread browser: paginated listing, changes feed, thread info,
compacted log, agents, the static page. Real servers on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent
from support.clock import next_millisecond
from support.events import agent_run_events, read_log, run_input, served, user_message
from support.official_client import OfficialClient, assert_same_end
from support.servers import REPO_ROOT, RunningGateway, serve_gateway, serve_scripted_gateway
from support.sse import FeedReader, collect

from agui_gateway.server.config import GatewayConfig, parse_tokens
from agui_gateway.server.http.listing import decode_cursor
from agui_gateway.store import NewEvent
from agui_gateway.store.file import FileStore

READER = "reader-token-aaaa"


@pytest.fixture
def gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    with serve_scripted_gateway(tmp_path / "data", agent[1], heartbeat_s=0.2) as gw:
        yield gw


def _events(thread: str, n: int) -> list[NewEvent]:
    run = f"run-{thread}"
    return [
        NewEvent({"type": "RUN_STARTED", "threadId": thread, "runId": run}, run),
        *(NewEvent({"type": "CUSTOM", "name": "tick", "value": i}, run) for i in range(n)),
        NewEvent({"type": "RUN_FINISHED", "threadId": thread, "runId": run}, run),
    ]


async def _fill(data_dir: Path, threads: dict[str, int]) -> None:
    """Threads with the given event counts, appended in the dict's order (later = newer)."""
    store = FileStore(data_dir, fsync="never")
    await store.open()
    for thread, n in threads.items():
        await store.append(thread, _events(thread, n))
        await next_millisecond()  # distinct record timestamps: the order under test
    await store.close()


async def test_listing_without_limit_or_cursor_is_the_whole_list_as_before(tmp_path: Path) -> None:
    await _fill(tmp_path / "data", {"b": 1, "a": 2, "c": 3})
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data")) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as client:
            body = (await client.get("/threads")).json()
    assert list(body) == ["threads"]
    assert [(t["threadId"], t["events"]) for t in body["threads"]] == [("a", 4), ("b", 3), ("c", 5)]
    assert all(set(t) == {"threadId", "events", "bytes", "lastActivity", "running"} for t in body["threads"])


async def test_pages_are_newest_first_and_the_cursor_walks_every_thread_once(tmp_path: Path) -> None:
    names = [f"t-{i:02d}" for i in range(23)]
    await _fill(tmp_path / "data", dict.fromkeys(names, 1) | {"other-1": 1})
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data")) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as client:
            seen: list[str] = []
            cursor = None
            pages = 0
            while True:
                params = {"limit": "5", "prefix": "t-"} | ({"cursor": cursor} if cursor else {})
                body = (await client.get("/threads", params=params)).json()
                pages += 1
                seen += [t["threadId"] for t in body["threads"]]
                cursor = body["next"]
                if cursor is None:
                    break
            all_rows = (await client.get("/threads", params={"limit": "1000"})).json()
    assert pages == 5
    assert seen == list(reversed(names))  # newest first, each once
    assert all_rows["threads"][0]["threadId"] == "other-1" and all_rows["next"] is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be between"),
        ({"limit": "x"}, "limit must be an integer"),
        ({"limit": "1001"}, "limit must be between"),
        ({"cursor": "not-a-cursor"}, "cursor is not one this gateway sent"),
        ({"cursor": "WzEsMl0"}, "cursor is not one this gateway sent"),  # [1, 2]: wrong shape
        ({"prefix": "x" * 129}, "prefix is at most"),
    ],
)
async def test_bad_listing_parameters_are_a_400_with_a_message(
    gateway: RunningGateway, params: dict[str, str], message: str
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.get("/threads", params=params)
    assert response.status_code == 400 and message in response.json()["error"]


def test_cursor_round_trip() -> None:
    from agui_gateway.server.http.listing import encode_cursor

    assert decode_cursor(encode_cursor((-1_700_000_000_000, "t.é-1"))) == (-1_700_000_000_000, "t.é-1")


async def test_changes_feed_sends_ready_then_one_row_per_changed_thread(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    scripted.script("f1", agent_run_events("feed-1", "f1", text_deltas=40))
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=10) as client,
        client.stream("GET", "/threads/changes") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        feed = FeedReader(response)
        await feed.more()
        assert feed.frames[0][0] == "ready"
        await collect(client, "POST", "/agents/scripted/run", json=run_input("feed-1", "f1"))
        stored = len(read_log(gateway.gateway.config.data_dir, "feed-1"))
        while not any(row["events"] == stored for row in feed.rows()):
            await feed.more()
    rows = feed.rows()
    assert {r["threadId"] for r in rows} == {"feed-1"}
    # Coalesced: far fewer rows than the run's events.
    assert len(rows) < stored / 4
    assert rows[-1]["running"] is False and rows[-1]["bytes"] > 0


async def test_changes_feed_and_listing_show_only_threads_in_the_tokens_scope(
    tmp_path: Path, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, url = agent
    await _fill(tmp_path / "data", {"team-a-1": 1, "team-b-1": 1})
    admin = "admin-token-cccc"
    tokens = parse_tokens(f"{READER}:read:team-a- {admin}:write:*")
    scripted.script("s1", agent_run_events("team-b-1", "s1", tools=0))
    scripted.script("s2", agent_run_events("team-a-1", "s2", tools=0))
    with serve_scripted_gateway(tmp_path / "data", url, tokens=tokens, heartbeat_s=0.2) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
            reader = {"authorization": f"Bearer {READER}"}
            listed = (await client.get("/threads", params={"limit": "10"}, headers=reader)).json()
            assert [t["threadId"] for t in listed["threads"]] == ["team-a-1"]
            assert (await client.get("/threads/changes")).status_code == 401
            assert (await client.get("/threads/team-b-1/info", headers=reader)).status_code == 403
            async with client.stream("GET", "/threads/changes", headers=reader) as response:
                feed = FeedReader(response)
                await feed.more()
                writer = {"authorization": f"Bearer {admin}"}
                await collect(client, "POST", "/agents/scripted/run", json=run_input("team-b-1", "s1"), headers=writer)
                await collect(client, "POST", "/agents/scripted/run", json=run_input("team-a-1", "s2"), headers=writer)
                while not any(row["threadId"] == "team-a-1" and not row["running"] for row in feed.rows()):
                    await feed.more()
    # team-b-1 changed first, yet only team-a-1 reached the reader.
    assert {row["threadId"] for row in feed.rows()} == {"team-a-1"}


async def test_info_reports_stored_and_fresh_replay_sizes(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    for i in range(3):
        scripted.script(f"i{i}", agent_run_events("info-1", f"i{i}", text_deltas=30))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        for i in range(3):
            body = run_input("info-1", f"i{i}", [user_message(f"u{i}", f"question {i}")])
            await collect(client, "POST", "/agents/scripted/run", json=body)
        info = (await client.get("/threads/info-1/info")).json()
        missing = await client.get("/threads/nothing-here/info")
    stored = read_log(gateway.gateway.config.data_dir, "info-1")
    assert info["events"] == len(stored) == info["replay"]["seq"]
    raw_bytes = (gateway.gateway.config.data_dir / "threads" / "info-1" / "log.jsonl").stat().st_size
    assert info["bytes"] == raw_bytes
    assert 0 < info["replay"]["bytes"] < raw_bytes / 2
    assert 0 < info["replay"]["frames"] < len(stored) / 5
    assert missing.status_code == 404


async def test_events_stream_of_the_info_sizes(gateway: RunningGateway, agent: tuple[ScriptedAgent, str]) -> None:
    """The replay bytes info reports are exactly what a fresh client receives before the tail."""
    scripted, _ = agent
    scripted.script("e1", agent_run_events("info-2", "e1"))
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        await collect(client, "POST", "/agents/scripted/run", json=run_input("info-2", "e1"))
        info = (await client.get("/threads/info-2/info")).json()
        received = bytearray()
        async with client.stream("GET", "/threads/info-2/events") as stream:
            async for chunk in stream.aiter_bytes():
                received += chunk
                # The last frame of the replay: "id: EPOCH:SEQ".
                if f":{info['replay']['seq']}\n".encode() in received and received.endswith(b"\n\n"):
                    break
    body = bytes(received).removeprefix(b"retry: 1000\n\n")
    assert len(body) == info["replay"]["bytes"]
    assert body.count(b"\n\n") == info["replay"]["frames"]


async def test_compacted_log_replays_to_the_raw_logs_messages_and_state(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], official_client: OfficialClient
) -> None:
    scripted, _ = agent
    scripted.script("c1", agent_run_events("compact-1", "c1", text_deltas=20))
    # The second run ends asking for approval: the compacted log must keep that pending.
    asking = agent_run_events("compact-1", "c2", text_deltas=20, tools=3)
    asking[-1] = {**asking[-1], "outcome": {"type": "interrupt", "interrupts": [{"id": "i-1", "reason": "confirm"}]}}
    scripted.script("c2", asking)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        await collect(
            client, "POST", "/agents/scripted/run", json=run_input("compact-1", "c1", [user_message("u1", "a")])
        )
        await collect(
            client, "POST", "/agents/scripted/run", json=run_input("compact-1", "c2", [user_message("u2", "b")])
        )
        raw = await client.get("/threads/compact-1/log.jsonl")
        compacted = await client.get("/threads/compact-1/log.jsonl", params={"compact": "1"})
        refused = await client.get("/threads/compact-1/log.jsonl", params={"compact": "1", "after": "3"})
    assert compacted.status_code == 200 and compacted.headers["content-type"] == "application/x-ndjson"
    raw_events = [served(orjson.loads(line)) for line in raw.content.splitlines()]
    compact_events = [orjson.loads(line) for line in compacted.content.splitlines()]
    assert len(compacted.content) < len(raw.content) / 2
    expected = official_client.replay(raw_events)
    assert expected.pending_interrupts == [{"id": "i-1", "reason": "confirm"}]
    assert_same_end("the compacted log", official_client.replay(compact_events), expected)
    assert refused.status_code == 400


async def test_agents_and_the_static_page(tmp_path: Path) -> None:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, agents={"other": "http://127.0.0.1:9/"})
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as client:
            agents = (await client.get("/agents")).json()
            bare = await client.get("/ui")
            page = await client.get("/ui/")
            bundle = await client.get("/ui/vendor/agui-client.js")
            missing = await client.get("/ui/nope.js")
    assert agents == {"agents": ["demo", "other"]}
    assert bare.status_code == 307 and bare.headers["location"].endswith("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in page.text
    # The official client, bundled: no CDN, nothing fetched from elsewhere.
    assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]
    assert b"AbstractAgent" in bundle.content and b"https://cdn" not in bundle.content
    assert missing.status_code == 404


def test_the_committed_client_bundle_is_what_the_lock_file_builds(tmp_path: Path) -> None:
    """``npm run --prefix ui build`` reproduces the shipped bundle byte for byte."""
    if not (REPO_ROOT / "ui" / "node_modules" / "esbuild").is_dir():
        pytest.fail("ui/node_modules is missing: run 'npm ci --prefix ui' (scripts/test.sh does)")
    out = tmp_path / "agui-client.js"
    subprocess.run(["node", str(REPO_ROOT / "ui" / "build.mjs"), str(out)], check=True, capture_output=True)
    committed = REPO_ROOT / "agui_gateway" / "server" / "ui" / "static" / "vendor" / "agui-client.js"
    assert out.read_bytes() == committed.read_bytes()


async def test_the_inspector_extra_is_mounted_at_ui_inspector_against_the_gateways_agents(tmp_path: Path) -> None:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, inspector=True)
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as client:
            page = await client.get("/ui/inspector/")
            inspector_config = (await client.get("/ui/inspector/config.json")).json()
            ours = await client.get("/ui/")  # the thread browser is still there
    assert page.status_code == 200 and "agui-inspector" in page.text
    assert inspector_config["agents"] == [{"id": "demo", "url": "/agents/demo/run", "name": "demo"}]
    assert ours.status_code == 200 and "Threads" in ours.text


async def test_without_the_flag_there_is_no_inspector(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        assert (await client.get("/ui/inspector/")).status_code == 404
