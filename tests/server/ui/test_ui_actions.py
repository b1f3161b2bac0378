"""What chat UIs do, through the real gateway, with an unmodified official ``HttpAgent``.

Each action (plain turns, edit, regenerate, delete, setState, a frontend tool,
an interrupt answered with ``resume``) is played by ``harness/ui-session.mjs``: the
official client (@ag-ui/client 1.0.0) pointed at the gateway's run endpoint, its
response streams captured byte for byte. Then everyone else must end exactly where
the caller ended (messages, state, pending interrupts), replayed through the
official client:

* a client connecting afterwards (``POST /connect``) and a fresh ``GET /events``;
* a client that received the caller's streams up to any id and resumes after it;
* ``/snapshot``, and ``agui-gateway compact`` of the exported ``log.jsonl``;
* ``GET /events?run=R`` for every run R: where the caller was right after R
  (the branch that ends at R);

and the third-party conformance validator ``ag-ui-validate`` finds no error in
the caller's streams, a fresh replay, a branch replay and the compacted log.

Agents: the gateway's demo agent, and pydantic-ai's AG-UI adapter over its
``FunctionModel`` (a real third-party integration, offline).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from ag_ui_validate import create_validator
from support import pydantic_agent
from support.events import run_input
from support.official_client import HARNESS_DIR, OfficialClient, ReplayResult, require_harness
from support.servers import RunningGateway, serve_app, serve_gateway
from support.sse import SseReader, collect, events_of, has_id
from support.stores import delete_keys

from agui_gateway.server.config import GatewayConfig
from agui_gateway.store.redis import RedisStore

FRONTEND_TOOLS = [
    {
        "name": "pick_color",
        "description": "Ask the user to pick a colour in the UI.",
        "parameters": {"type": "object", "properties": {"color": {"type": "string"}}},
    }
]


def say(mid: str, text: str) -> dict[str, Any]:
    return {"op": "say", "id": mid, "text": text}


def run(run_id: str, **extra: Any) -> dict[str, Any]:
    return {"op": "run", "runId": run_id, **extra}


TWO_TURNS = [say("u1", "What is the weather in Paris?"), run("r1"), say("u2", "And a plan for tomorrow?"), run("r2")]

# action -> (steps, {run: (parentRunId, branch)} as /runs must list them)
ACTIONS: dict[str, tuple[list[dict[str, Any]], dict[str, tuple[str | None, bool]]]] = {
    "plain": (
        [*TWO_TURNS, say("u3", "Thanks, one more thing?"), run("r3")],
        {"r1": (None, False), "r2": ("r1", False), "r3": ("r2", False)},
    ),
    "edit": (
        [*TWO_TURNS, {"op": "keepBefore", "id": "u2"}, say("u2-edited", "And a plan for Sunday?"), run("r3")],
        {"r1": (None, False), "r2": ("r1", False), "r3": ("r1", True)},
    ),
    "regenerate": (
        [*TWO_TURNS, {"op": "keepThrough", "id": "u2"}, run("r3")],
        {"r1": (None, False), "r2": ("r1", False), "r3": ("r1", True)},
    ),
    # A message deleted inside the conversation. (Deleting only its first messages is what
    # a client holding a history window looks like: the README's window rule continues the
    # thread with them, the one case it cannot tell apart.)
    "delete": (
        [*TWO_TURNS, {"op": "delete", "id": "u2"}, say("u3", "Summarise, please."), run("r3")],
        {"r1": (None, False), "r2": ("r1", False), "r3": ("r1", True)},
    ),
    "set_state": (
        [
            say("u1", "What is the weather in Paris?"),
            run("r1"),
            {"op": "setState", "state": {"cities": ["Rome"], "theme": "dark"}},
            say("u2", "And a plan for Oslo?"),
            run("r2"),
            {"op": "setState", "state": {"cities": ["Lima"]}},
            say("u3", "Thanks, and Quito?"),
            run("r3"),
            # A state the agent then leaves alone: only the gateway's record of it replays it.
            {"op": "setState", "state": {"cities": [], "theme": "light"}},
            say("u4", "Now let me pick with the frontend tool"),
            run("r4", tools=FRONTEND_TOOLS),
        ],
        {"r1": (None, False), "r2": ("r1", False), "r3": ("r2", False), "r4": ("r3", False)},
    ),
}
HUMAN_IN_THE_LOOP: dict[str, tuple[list[dict[str, Any]], dict[str, tuple[str | None, bool]]]] = {
    "frontend_tool": (
        [
            say("u1", "Let me pick with the frontend tool"),
            run("r1", tools=FRONTEND_TOOLS),
            {"op": "toolResult", "id": "tr1", "content": "the user picked teal"},
            run("r2", tools=FRONTEND_TOOLS),
        ],
        {"r1": (None, False), "r2": ("r1", False)},
    ),
    "interrupt_resume": (
        [say("u1", "Please approve deleting the file"), run("r1"), run("r2", approve=True)],
        {"r1": (None, False), "r2": ("r1", False)},
    ),
}


@pytest.fixture(scope="module")
def ui_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayConfig]:
    """The demo agent and the pydantic-ai agent (served on loopback for the module)."""
    with serve_app(pydantic_agent.app) as pydantic_url:
        yield GatewayConfig(
            data_dir=tmp_path_factory.mktemp("ui") / "data",
            demo=True,
            demo_pace=0,
            heartbeat_s=0.2,
            agents={"pydantic": pydantic_url + "/"},
        )


@pytest.fixture(scope="module")
def file_gateway(ui_config: GatewayConfig) -> Iterator[RunningGateway]:
    """The gateway on the embedded file store."""
    with serve_gateway(ui_config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def redis_gateway(ui_config: GatewayConfig, redis_url: str) -> Iterator[RunningGateway]:
    """The gateway on Redis: the one scripts/test.sh exports (or a private server), under a
    key prefix of its own."""
    prefix = f"agui-test-{uuid.uuid4().hex}"
    try:
        with serve_gateway(ui_config, RedisStore(redis_url, prefix=prefix)) as gateway:
            yield gateway
    finally:
        delete_keys(redis_url, prefix)


def play(url: str, thread_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """``harness/ui-session.mjs``: the official HttpAgent doing what ``steps`` say."""
    done = subprocess.run(
        [require_harness(), str(HARNESS_DIR / "ui-session.mjs")],
        cwd=HARNESS_DIR,
        input=json.dumps({"url": url, "threadId": thread_id, "steps": steps}).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["errors"] == [], result["errors"]
    return result


def end_of(result: ReplayResult) -> tuple[Any, Any, Any]:
    return result.messages, result.state, result.pending_interrupts


def assert_valid(label: str, events: list[dict[str, Any]]) -> None:
    """ag-ui-validate's core rules: no error-level finding."""
    validator = create_validator()
    for event in events:
        validator.feed(event)
    validator.finalize()
    report = validator.report()
    errors = [(d.rule, d.event_index, d.message) for d in report.diagnostics if d.severity == "error"]
    assert errors == [] and report.internal_errors == [], f"{label}: {errors} {report.internal_errors}"


def compact_cli(log: bytes, tmp_path: Path) -> list[dict[str, Any]]:
    source, target = tmp_path / "exported.jsonl", tmp_path / "compacted.jsonl"
    source.write_bytes(log)
    subprocess.run(
        [sys.executable, "-m", "agui_gateway", "compact", str(source), "-o", str(target)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return [orjson.loads(line) for line in target.read_bytes().splitlines() if line.strip()]


EVERY_ACTION = {**ACTIONS, **HUMAN_IN_THE_LOOP}
CASES = [(agent, action, "file") for agent in ("demo", "pydantic") for action in EVERY_ACTION] + [
    pytest.param(agent, action, "redis", marks=pytest.mark.redis)
    for agent, action in (("demo", "edit"), ("pydantic", "interrupt_resume"), ("pydantic", "set_state"))
]


@pytest.mark.parametrize(("agent", "action", "store"), CASES)
async def test_everyone_ends_where_the_caller_ended(
    request: pytest.FixtureRequest,
    official_client: OfficialClient,
    tmp_path: Path,
    agent: str,
    action: str,
    store: str,
) -> None:
    gateway: RunningGateway = request.getfixturevalue(f"{store}_gateway")
    steps, expected_runs = EVERY_ACTION[action]
    thread_id = f"ui-{agent}-{action}"
    target = [10**9]  # the thread's last seq, once the caller is done
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60) as watching:
        # A second tab, open before the thread exists: it follows every run live.
        watcher = asyncio.ensure_future(
            collect(watching, "GET", f"/threads/{thread_id}/events", until=lambda fs: has_id(target[0])(fs))
        )
        caller = await asyncio.to_thread(play, f"{gateway.url}/agents/{agent}/run", thread_id, steps)
        target[0] = (await watching.get(f"/threads/{thread_id}/snapshot")).json()["seq"]
        live = await watcher
    ending = (caller["messages"], caller["state"], caller["pendingInterrupts"])
    if action == "set_state":
        if agent == "pydantic":  # the agent ran on the state the UI set (it replaced everything), added to it
            assert caller["runs"][2]["state"] == {"cities": ["Lima", "Quito"]}
        assert caller["state"] == {"cities": [], "theme": "light"}
    if action == "interrupt_resume":  # the interrupt was pending after the first run, answered by the second
        assert caller["runs"][0]["pendingInterrupts"] and caller["pendingInterrupts"] == []
    if action == "frontend_tool":
        assert any(m["role"] == "tool" and m["id"] == "tr1" for m in caller["messages"])
    streams = [SseReader().feed(r["sse"].encode()) for r in caller["runs"]]

    def replayed(label: str, events: list[dict[str, Any]]) -> ReplayResult:
        result = official_client.replay(events)
        assert result.error is None, f"{label}: {result.error}"
        return result

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        snapshot = (await client.get(f"/threads/{thread_id}/snapshot")).json()
        latest = snapshot["seq"]
        assert (snapshot["messages"], snapshot["state"]) == ending[:2]
        assert snapshot["running"] is False

        # One run, one RUN_STARTED: each caller stream is exactly one run, every frame with an id.
        for frames in streams:
            events = events_of(frames)
            assert [e["type"] for e in events].count("RUN_STARTED") == 1 and events[0]["type"] == "RUN_STARTED"
            assert events[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR")
            assert all(f.id is not None for f in frames if f.event is not None)
            assert_valid(f"{action}: the caller's stream", events)

        assert end_of(replayed("a live client from the start", events_of(live))) == ending
        assert_valid(f"{action}: a live client's stream", events_of(live))
        fresh = await collect(client, "GET", f"/threads/{thread_id}/events", until=has_id(latest))
        assert end_of(replayed("fresh /events", events_of(fresh))) == ending
        assert_valid(f"{action}: a fresh replay", events_of(fresh))
        later = await collect(client, "POST", f"/agents/{agent}/connect", json=run_input(thread_id, "later"))
        assert end_of(replayed("a client connecting afterwards", events_of(later))) == ending

        # A client that received the caller's streams up to an id, then resumes after it:
        # from every id (on Redis, where the same records are served, from every 5th and
        # each stream's first and last, to keep the suite short).
        held: list[dict[str, Any]] = []
        for frames in streams:
            ids = [f.id for f in frames if f.id is not None]
            chosen = set(ids) if store == "file" else {*ids[::5], ids[0], ids[-1]}
            for frame in frames:
                if frame.event is None:
                    continue
                held.append(frame.event)
                if frame.id is None or frame.id not in chosen:
                    continue
                resumed = (
                    await collect(
                        client,
                        "GET",
                        f"/threads/{thread_id}/events",
                        params={"after": str(frame.id)},
                        until=has_id(latest),
                    )
                    if frame.id < latest
                    else []
                )
                assert end_of(replayed(f"resume after {frame.id}", held + events_of(resumed))) == ending

        # The exported log, compacted offline.
        exported = (await client.get(f"/threads/{thread_id}/log.jsonl")).content
        compacted = compact_cli(exported, tmp_path)
        assert end_of(replayed("agui-gateway compact", compacted)) == ending
        assert_valid(f"{action}: the compacted log", compacted)

        # The runs, and the branch that ends at each (where the caller was right after it).
        listed = (await client.get(f"/threads/{thread_id}/runs")).json()["runs"]
        assert {r["runId"]: (r["parentRunId"], r["branch"]) for r in listed} == expected_runs
        assert all(r["status"] in ("finished", "interrupted") for r in listed)
        if any(branch for _, branch in expected_runs.values()):
            metrics = (await client.get("/metrics")).text
            counted = [line for line in metrics.splitlines() if line.startswith("agui_gateway_branches_total ")]
            assert counted and float(counted[0].split()[1]) >= 1, counted
        for after_run in caller["runs"]:
            branch = await collect(client, "GET", f"/threads/{thread_id}/events", params={"run": after_run["runId"]})
            assert all(f.id is None for f in branch)
            got = replayed(f"branch ending at {after_run['runId']}", events_of(branch))
            assert end_of(got) == (after_run["messages"], after_run["state"], after_run["pendingInterrupts"])
            assert_valid(f"{action}: the branch replay of {after_run['runId']}", events_of(branch))
