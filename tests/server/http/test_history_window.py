"""History windows and message pages over HTTP: ``/events?turns=N``, a connect's
``forwardedProps.aguiGateway.turns`` and ``GET /threads/{t}/messages``, judged by the
pinned official client against the thread's full fresh replay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent, serve_agent
from support.events import agent_run_events, run_input, user_message
from support.official_client import OfficialClient
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import Frame, collect, events_of, has_id

from agui_gateway.protocol.builders import HISTORY_WINDOW_EVENT_NAME
from agui_gateway.server.config import parse_tokens

THREAD = "team-a-long"
TURNS = 6
READER = "reader-token-aaaa"
OTHER = "other-token-bbbb"


@pytest.fixture
def agent() -> Iterator[tuple[ScriptedAgent, str]]:
    with serve_agent() as served:
        yield served


@pytest.fixture
def gateway(tmp_path: Path, agent: tuple[ScriptedAgent, str]) -> Iterator[RunningGateway]:
    tokens = parse_tokens(f"{READER}:write:team-a- {OTHER}:read:team-b-")
    with serve_scripted_gateway(tmp_path / "data", agent[1], tokens=tokens) as gw:
        yield gw


def _auth(token: str = READER) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def converse(client: httpx.AsyncClient, agent: ScriptedAgent, thread: str, turns: int) -> None:
    """``turns`` runs, each continuing the thread with its whole history plus a user message."""
    for turn in range(turns):
        run_id = f"r{turn}"
        agent.script(run_id, agent_run_events(thread, run_id, text_deltas=3))
        messages = (await client.get(f"/threads/{thread}/snapshot")).json()["messages"]
        body = run_input(thread, run_id, [*messages, user_message(f"u{turn}", f"question {turn}")])
        await collect(client, "POST", "/agents/scripted/run", json=body)


def window_of(frames: list[Frame]) -> dict[str, Any]:
    [note] = [e for e in events_of(frames) if e["type"] == "CUSTOM" and e["name"] == HISTORY_WINDOW_EVENT_NAME]
    value: dict[str, Any] = note["value"]
    return value


async def older_pages(client: httpx.AsyncClient, thread: str, before: str | None, limit: int) -> list[Any]:
    """Every message older than the window, page by page (newest page first)."""
    older: list[Any] = []
    while before is not None:
        response = await client.get(f"/threads/{thread}/messages", params={"before": before, "limit": limit})
        assert response.status_code == 200, response.text
        page = response.json()
        older = page["messages"] + older
        before = page["before"]
    return older


async def test_a_window_and_its_pages_are_the_full_replay(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str], official_client: OfficialClient
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, headers=_auth()) as client:
        await converse(client, agent[0], THREAD, TURNS)
        latest = (await client.get(f"/threads/{THREAD}/snapshot")).json()["seq"]
        connect = run_input(THREAD, "connect")
        full = await collect(client, "POST", "/agents/scripted/connect", json=connect)
        windowed = await collect(
            client,
            "POST",
            "/agents/scripted/connect",
            json={**connect, "forwardedProps": {"aguiGateway": {"turns": 2}}},
        )
        watched = await collect(client, "GET", f"/threads/{THREAD}/events?turns=2", until=has_id(latest))
        older = await older_pages(client, THREAD, window_of(windowed)["before"], limit=3)

    whole = official_client.replay(events_of(full))
    window = official_client.replay(events_of(windowed))
    assert whole.error is None and window.error is None, (whole.error, window.error)
    note = window_of(windowed)
    assert note["turns"] == 2 and note["olderMessages"] == len(older) > 0
    # The last two runs' messages: two user messages and what the agent answered to each.
    assert [m["id"] for m in window.messages if m["role"] == "user"] == [f"u{TURNS - 2}", f"u{TURNS - 1}"]
    assert older + window.messages == whole.messages
    assert window.state == whole.state and window.pending_interrupts == whole.pending_interrupts
    # The watcher's stream is the connect's, and ids work as in a full replay: only the
    # window's last frame and the latest event carry one.
    assert events_of(watched) == events_of(windowed)
    assert [f.id for f in windowed if f.id is not None] == [latest]


async def test_turns_is_ignored_with_a_resume_position(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, headers=_auth()) as client:
        await converse(client, agent[0], THREAD, 3)
        latest = (await client.get(f"/threads/{THREAD}/snapshot")).json()["seq"]
        plain = await collect(client, "GET", f"/threads/{THREAD}/events", params={"after": 5}, until=has_id(latest))
        windowed = await collect(
            client, "GET", f"/threads/{THREAD}/events", params={"after": 5, "turns": 1}, until=has_id(latest)
        )
    assert events_of(windowed) == events_of(plain)
    assert [f.id for f in windowed if f.id is not None] == list(range(6, latest + 1))


async def test_a_page_holds_at_most_its_limit_and_links_the_one_before(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, headers=_auth()) as client:
        await converse(client, agent[0], THREAD, 3)
        messages = (await client.get(f"/threads/{THREAD}/snapshot")).json()["messages"]
        last = messages[-1]["id"]
        page = (await client.get(f"/threads/{THREAD}/messages", params={"before": last, "limit": 2})).json()
        everything = (await client.get(f"/threads/{THREAD}/messages", params={"before": last})).json()
    assert page == {"messages": messages[-3:-1], "before": messages[-3]["id"]}
    assert everything == {"messages": messages[:-1], "before": None}


async def test_bad_windows_and_pages_are_clear_refusals(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30, headers=_auth()) as client:
        await converse(client, agent[0], THREAD, 1)
        first = (await client.get(f"/threads/{THREAD}/snapshot")).json()["messages"][0]["id"]
        refused = {
            "turns=0": await client.get(f"/threads/{THREAD}/events?turns=0"),
            "turns=-1": await client.get(f"/threads/{THREAD}/events?turns=-1"),
            "turns=two": await client.get(f"/threads/{THREAD}/events?turns=two"),
            "turns=": await client.get(f"/threads/{THREAD}/events?turns="),
            "run and turns": await client.get(f"/threads/{THREAD}/events?run=r0&turns=1"),
            "no before": await client.get(f"/threads/{THREAD}/messages"),
            "limit=0": await client.get(f"/threads/{THREAD}/messages", params={"before": first, "limit": 0}),
            "limit=1001": await client.get(f"/threads/{THREAD}/messages", params={"before": first, "limit": 1001}),
        }
        for props in ({"turns": "3"}, {"turns": 0}, {"turns": True}, {"turns": 1.5}, "3"):
            body = run_input(THREAD, "c", forwardedProps={"aguiGateway": props})
            refused[f"connect {props!r}"] = await client.post("/agents/scripted/connect", json=body)
        unknown = await client.get(f"/threads/{THREAD}/messages", params={"before": "nope"})
        foreign = await client.get(f"/threads/{THREAD}/messages", params={"before": first}, headers=_auth(OTHER))
        no_token = await client.get(
            f"/threads/{THREAD}/messages", params={"before": first}, headers={"authorization": ""}
        )
        first_page = await client.get(f"/threads/{THREAD}/messages", params={"before": first})
    for name, response in refused.items():
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert response.json()["code"] == "bad_request", name
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    assert unknown.json()["code"] == "not_found"
    assert foreign.status_code == 403 and no_token.status_code == 401
    assert first_page.json() == {"messages": [], "before": None}
