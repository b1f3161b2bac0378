"""Server-side history (``history = "gateway"``): the agent gets the stored thread plus
the caller's new messages; a caller may send only its new message; a rewrite of a
stored message is a 409 that reaches no agent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent, serve_agent
from support.events import agent_run_events, run_input, user_message
from support.servers import serve_gateway
from support.sse import collect, events_of

from agui_gateway.server.config import AgentOptions, GatewayConfig


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedAgent, str]]:
    """A scripted agent of this test's own (its recorded requests are this test's)."""
    with serve_agent() as served:
        yield served


def _gateway(tmp_path: Path, url: str, history: str) -> Any:
    config = GatewayConfig(
        data_dir=tmp_path,
        agents={"a": url},
        agent_options={"a": AgentOptions(history=history)},  # type: ignore[arg-type]
    )
    return serve_gateway(config)


def _sent_messages(agent: ScriptedAgent) -> list[list[dict[str, Any]]]:
    return [json.loads(body)["messages"] for _headers, body in agent.requests]


async def _turn(client: httpx.AsyncClient, thread: str, run_id: str, messages: list[dict[str, Any]]) -> Any:
    return await collect(client, "POST", "/agents/a/run", json=run_input(thread, run_id, messages))


async def test_a_caller_sends_only_its_new_message_and_the_agent_gets_the_thread(
    tmp_path: Path, scripted: tuple[ScriptedAgent, str]
) -> None:
    agent, url = scripted
    agent.script("r1", agent_run_events("t", "r1"))
    agent.script("r2", agent_run_events("t", "r2"))
    with _gateway(tmp_path, url, "gateway") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            await _turn(client, "t", "r1", [user_message("u1", "first")])
            after_turn_1 = (await client.get("/threads/t/snapshot")).json()["messages"]
            await _turn(client, "t", "r2", [user_message("u2", "second")])
            final = (await client.get("/threads/t/snapshot")).json()["messages"]
    first, second = _sent_messages(agent)
    assert first == [user_message("u1", "first")]
    # Exactly the official client's view of the stored thread, then the new message.
    assert second == [*after_turn_1, user_message("u2", "second")]
    assert final[: len(second)] == second


async def test_a_resent_transcript_is_accepted_and_not_duplicated(
    tmp_path: Path, scripted: tuple[ScriptedAgent, str]
) -> None:
    agent, url = scripted
    agent.script("r1", agent_run_events("t", "r1"))
    agent.script("r2", agent_run_events("t", "r2"))
    with _gateway(tmp_path, url, "gateway") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            await _turn(client, "t", "r1", [user_message("u1", "first")])
            held = (await client.get("/threads/t/snapshot")).json()["messages"]
            await _turn(client, "t", "r2", [*held, user_message("u2", "second")])
    assert _sent_messages(agent)[1] == [*held, user_message("u2", "second")]


async def test_rewriting_a_stored_message_is_a_409_that_reaches_no_agent(
    tmp_path: Path, scripted: tuple[ScriptedAgent, str]
) -> None:
    agent, url = scripted
    agent.script("r1", agent_run_events("t", "r1"))
    agent.script("r3", agent_run_events("t", "r3"))
    with _gateway(tmp_path, url, "gateway") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            await _turn(client, "t", "r1", [user_message("u1", "first")])
            before = (await client.get("/threads/t/log.jsonl")).content
            refused = await client.post(
                "/agents/a/run", json=run_input("t", "r2", [user_message("u1", "tampered"), user_message("u2", "x")])
            )
            after = (await client.get("/threads/t/log.jsonl")).content
            again = await _turn(client, "t", "r3", [user_message("u3", "fine")])
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "history_conflict"
    assert body["details"] == {"messageId": "u1", "fields": ["content"]}
    run_ids = [json.loads(body)["runId"] for _headers, body in agent.requests]
    assert run_ids == ["r1", "r3"], "the tampered transcript must not reach the agent"
    assert after == before, "a refused run stores nothing"
    assert events_of(again)[-1]["type"] == "RUN_FINISHED", "the thread accepts the next run"


async def test_client_history_forwards_the_callers_messages_as_sent(
    tmp_path: Path, scripted: tuple[ScriptedAgent, str]
) -> None:
    agent, url = scripted
    agent.script("r1", agent_run_events("t", "r1"))
    agent.script("r2", agent_run_events("t", "r2"))
    with _gateway(tmp_path, url, "client") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            await _turn(client, "t", "r1", [user_message("u1", "first")])
            await _turn(client, "t", "r2", [user_message("u2", "second")])
    assert _sent_messages(agent)[1] == [user_message("u2", "second")]


def test_the_config_file_sets_history_and_capabilities_per_agent(tmp_path: Path) -> None:
    from agui_gateway.server.config import load_config

    path = tmp_path / "gateway.toml"
    path.write_text(
        '[agents]\nplain = "http://127.0.0.1:9/a"\n'
        '[agents.kept]\nurl = "http://127.0.0.1:9/b"\nhistory = "gateway"\n'
        "capabilities = { tools = { supported = true } }\n"
        '[agents.local]\napp = "support.pydantic_agent:app/"\n'
    )
    config = load_config(path)
    assert dict(config.agents) == {
        "plain": "http://127.0.0.1:9/a",
        "kept": "http://127.0.0.1:9/b",
        "local": "support.pydantic_agent:app/",
    }
    assert config.options_of("kept") == AgentOptions(history="gateway", capabilities={"tools": {"supported": True}})
    assert config.options_of("plain") == AgentOptions()


@pytest.mark.parametrize(
    "table",
    ['[agents.x]\nurl = "http://a/"\nhistory = "sometimes"\n', '[agents.x]\nurl = "http://a/"\napp = "m:a"\n'],
)
def test_bad_agent_tables_are_clear_config_errors(tmp_path: Path, table: str) -> None:
    from agui_gateway.server.config import ConfigError, load_config

    path = tmp_path / "gateway.toml"
    path.write_text(table)
    with pytest.raises(ConfigError, match=r"agents\.x"):
        load_config(path)
