"""Replay and resume through the real gateway, judged by the official client.

For a thread driven through the gateway: the stored log is what the agent sent
(plus the README's gateway additions, nothing else); the live streams the callers
saw, a watcher's live stream, a fresh replay, and every prefix of those cut at an
id plus its resume end where the stored log ends under the official client
(messages, state and pending interrupts), and the client accepts each of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, assert_stored_as_sent, run_input, served, user_message
from support.official_client import (
    OfficialClient,
    assert_same_end,
    official_client_of_each_version,  # noqa: F401 (the fixture official_client)
)
from support.servers import RunningGateway, serve_scripted_gateway
from support.sse import Frame, collect, events_of, has_id
from support.stores import stored_log
from support.waiting import wait_until_async

from agui_testkit.generate import generate_log


@pytest.fixture
def gateway(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> Iterator[RunningGateway]:
    """The gateway on the file store, then on Redis: every test here runs on both."""
    with serve_scripted_gateway(tmp_path / "data", agent[1], heartbeat_s=0.5, **store_overrides) as gw:
        yield gw


def split_runs(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    runs: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "RUN_STARTED" or not runs:
            runs.append([])
        runs[-1].append(event)
    return runs


def assert_replays_to(client: OfficialClient, label: str, events: list[dict[str, Any]], reference: Any) -> None:
    """``events`` replayed by the official client end where ``reference`` (a replay) ended."""
    assert_same_end(label, client.replay(events), reference)


async def assert_snapshot_is_the_clients(client: httpx.AsyncClient, thread_id: str, reference: Any) -> None:
    """``GET /snapshot`` holds what the official client holds after the stored log."""
    snapshot = (await client.get(f"/threads/{thread_id}/snapshot")).json()
    assert (snapshot["messages"], snapshot["state"]) == (reference.messages, reference.state)


def agent_run_done(run_id: str) -> Any:
    """Until the agent's run (from agent_run_events) has ended: its last message, then RUN_FINISHED.

    (Logs written before issue 7 had a gateway run with the same run id ahead of the agent's.)
    """

    def has_last_message(event: dict[str, Any]) -> bool:
        if event["type"] == "MESSAGES_SNAPSHOT":
            return any(m["id"] == f"{run_id}-m2" for m in event["messages"])
        return event.get("messageId") == f"{run_id}-m2"

    def done(frames: list[Frame]) -> bool:
        events = events_of(frames)
        return bool(events) and events[-1]["type"] == "RUN_FINISHED" and any(map(has_last_message, events))

    return done


def sample_positions(latest: int, count: int = 24) -> list[int]:
    step = max(1, latest // count)
    return sorted({0, 1, latest - 1, latest, *range(0, latest + 1, step)} - {-1})


def id_positions(frames: list[Frame]) -> list[tuple[int, int]]:
    """(index among event frames, id) for every event frame that carries an id."""
    out = []
    for index, frame in enumerate(f for f in frames if f.event is not None):
        if frame.id is not None:
            out.append((index, frame.id))
    return out


async def connect(client: httpx.AsyncClient, thread_id: str, last_id: int | None = None) -> list[Frame]:
    """POST /connect: history (fresh or after an id) and the live tail until the thread is idle."""
    headers = {} if last_id is None else {"last-event-id": str(last_id)}
    return await collect(
        client, "POST", "/agents/scripted/connect", json=run_input(thread_id, "connect"), headers=headers
    )


def assert_fresh_id_rule(frames: list[Frame], latest: int) -> None:
    """Ids only where everything up to them is held; ascending; the last frame has the latest seq."""
    event_frames = [f for f in frames if f.event is not None]
    assert event_frames[0].event["type"] == "RUN_STARTED"
    assert event_frames[-1].id == latest
    ids = [f.id for f in event_frames if f.id is not None]
    assert ids == sorted(set(ids))


@pytest.mark.parametrize("shape", ["mixed", "realistic_small", "error_runs", "parallel_tools"])
async def test_generated_thread_through_the_gateway(
    official_client: OfficialClient,
    gateway: RunningGateway,
    agent: tuple[ScriptedAgent, str],
    tmp_path: Path,
    shape: str,
) -> None:
    scripted, _ = agent
    runs = split_runs(generate_log(shape, seed=7))
    thread_id = f"gen-{shape}"
    live: list[Frame] = []
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        watcher = asyncio.ensure_future(
            collect(client, "GET", f"/threads/{thread_id}/events", until=lambda fs: len(events_of(fs)) >= total[0])
        )
        total = [10**9]
        sent = []
        for run in runs:
            run_id = f"{shape}-{run[0].get('runId', 'x')}"
            scripted.script(run_id, run)
            messages = (run[0].get("input") or {}).get("messages") or []
            body = run_input(thread_id, run_id, messages)
            sent.append((body, run))
            live += await collect(client, "POST", "/agents/scripted/run", json=body)
        stored = stored_log(gateway, thread_id)
        total[0] = len(stored)
        watched = await watcher
        # First the log against the agent, then every stream against the log.
        assert_stored_as_sent(stored, sent)
        raw = [served(r) for r in stored]
        assert events_of(live) == raw, "the callers' live streams are the stored log"
        assert events_of(watched) == raw, "a watcher's live stream is the stored log"
        assert [f.id for f in watched if f.event is not None] == list(range(1, len(raw) + 1))

        reference = official_client.replay(raw)
        assert reference.error is None, reference.error
        await assert_snapshot_is_the_clients(client, thread_id, reference)

        fresh = await connect(client, thread_id)
        assert_fresh_id_rule(fresh, len(raw))
        assert_replays_to(official_client, "fresh replay", events_of(fresh), reference)
        assert sum(len(str(e)) for e in events_of(fresh)) < sum(len(str(e)) for e in raw)

        # A cut of the raw stream at an id, plus its resume, is the raw stream exactly
        # (every position is covered by test_resume_from_every_position; a sample here).
        for n in sample_positions(len(raw)):
            resumed = await connect(client, thread_id, n)
            assert events_of(resumed) == raw[n:], f"resume after {n}"
            assert [f.id for f in resumed if f.event is not None] == list(range(n + 1, len(raw) + 1))
        # ?after= does the same for EventSource clients that start from a known id.
        half = len(raw) // 2
        by_query = await collect(
            client, "GET", f"/threads/{thread_id}/events", params={"after": str(half)}, until=has_id(len(raw))
        )
        assert events_of(by_query) == raw[half:]


async def test_fresh_client_during_an_open_run_and_every_resume(
    official_client: OfficialClient, gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    thread_id = "mid-run"
    first = agent_run_events(thread_id, "m1")
    second = agent_run_events(thread_id, "m2", text_deltas=12, tools=3)
    scripted.script("m1", first)
    hold_at = 14  # inside the second run's parallel tool calls' ARGS
    held = scripted.script("m2", second, hold_at=hold_at)
    first_input = run_input(thread_id, "m1", [user_message("u1", "first question")])
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        await collect(client, "POST", "/agents/scripted/run", json=first_input)
        history = (await client.get(f"/threads/{thread_id}/snapshot")).json()["messages"]
        caller = asyncio.ensure_future(
            collect(
                client,
                "POST",
                "/agents/scripted/run",
                json=run_input(thread_id, "m2", [*history, user_message("u2", "second")]),
            )
        )
        # Wait until the held part of the run is stored, then join fresh, mid-run.
        stored_before_hold = len(first) + hold_at
        await collect(
            client, "GET", f"/threads/{thread_id}/events", params={"after": "0"}, until=has_id(stored_before_hold)
        )
        mid = await collect(client, "GET", f"/threads/{thread_id}/events", until=has_id(stored_before_hold))
        assert_fresh_id_rule(mid, stored_before_hold)
        mid_events = events_of(mid)
        # The finished first run is one compacted run; the open run follows, from its RUN_STARTED.
        assert [e["type"] for e in mid_events[:2]] == ["RUN_STARTED", "MESSAGES_SNAPSHOT"]
        open_part = mid_events[[e["type"] for e in mid_events].index("RUN_FINISHED") + 1 :]
        # The open run's own RUN_STARTED carries u2, the caller's new message.
        assert open_part[0] == {
            **second[0],
            "input": {**open_part[0]["input"], "messages": [user_message("u2", "second")]},
        }
        cuts = [(mid_events[: index + 1], n) for index, n in id_positions(mid)]
        assert len(cuts) >= 3
        # A watcher that joined mid-run keeps receiving the run live after release.
        watcher = asyncio.ensure_future(
            collect(client, "GET", f"/threads/{thread_id}/events", until=agent_run_done("m2"))
        )
        held.release()
        run_frames = await caller
        watched = await watcher
        stored = stored_log(gateway, thread_id)
        # The caller of m2 sent the thread's history back: only u2 is new.
        assert_stored_as_sent(
            stored, [(first_input, first), (run_input(thread_id, "m2", [user_message("u2", "second")]), second)]
        )
        raw = [served(r) for r in stored]
        assert events_of(run_frames) == raw[len(first) :], "the caller's stream is its stored run"
        reference = official_client.replay(raw)
        assert reference.error is None, reference.error
        assert_replays_to(
            official_client,
            "caller's live stream",
            events_of(run_frames),
            official_client.replay(raw[len(first) :]),
        )
        assert_replays_to(official_client, "mid-run fresh join + live", events_of(watched), reference)
        for prefix, n in cuts:
            resumed = await connect(client, thread_id, n)
            assert events_of(resumed) == raw[n:]
            assert_replays_to(official_client, f"cut at id {n} + resume", prefix + events_of(resumed), reference)
        # A client cut inside the compacted block (before its first id) holds no id: it
        # starts over with a second fresh replay, on the same agent (what it took in of
        # the cut stream included), and ends where the log does.
        again = events_of(await connect(client, thread_id))
        first_id_at = id_positions(mid)[0][0]
        for cut in range(1, first_id_at + 1):
            restarted = official_client.replay(mid_events[:cut], then=[again])
            assert_same_end(f"cut after {cut} event(s) of the compacted block, then fresh", restarted, reference)


async def test_many_clients_at_once_all_end_identically(
    official_client: OfficialClient, gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, _ = agent
    thread_id = "crowd"
    runs = [agent_run_events(thread_id, f"c{i}", text_deltas=30, tools=3) for i in range(3)]
    runs.append(agent_run_events(thread_id, "c3", text_deltas=60, tools=4))
    for i in range(3):
        scripted.script(f"c{i}", runs[i])
    held = scripted.script("c3", runs[3], pace_s=0.002, hold_at=20)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=60, limits=httpx.Limits(max_connections=None)) as client:
        for i in range(3):
            await collect(
                client,
                "POST",
                "/agents/scripted/run",
                json=run_input(thread_id, f"c{i}", [user_message(f"u{i}", f"q{i}")]),
            )
        caller = asyncio.ensure_future(
            collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "c3", [user_message("u3", "q")]))
        )
        done = agent_run_done("c3")
        fresh = [
            asyncio.ensure_future(collect(client, "GET", f"/threads/{thread_id}/events", until=done)) for _ in range(40)
        ]
        resumers = [
            asyncio.ensure_future(
                collect(client, "GET", f"/threads/{thread_id}/events", params={"after": str(n)}, until=done)
            )
            for n in range(0, 40, 4)
        ]
        # All of them connect while the run is held (the caller's stream is one more).
        subscribers = gateway.gateway.metrics.subscribers
        await wait_until_async(lambda: subscribers._value.get() == len(fresh) + len(resumers) + 1)
        held.release()
        await caller
        fresh_frames = await asyncio.gather(*fresh)
        resumed_frames = await asyncio.gather(*resumers)
    stored = stored_log(gateway, thread_id)
    assert_stored_as_sent(
        stored,
        [
            (run_input(thread_id, f"c{i}", [user_message(f"u{i}", "q" if i == 3 else f"q{i}")]), events)
            for i, events in enumerate(runs)
        ],
    )
    raw = [served(r) for r in stored]
    reference = official_client.replay(raw)
    assert reference.error is None, reference.error
    # Every fresh client, judged by the official client (identical streams replayed once).
    distinct = {orjson.dumps(events_of(frames)): events_of(frames) for frames in fresh_frames}
    for events in distinct.values():
        assert_replays_to(official_client, "a fresh client", events, reference)
    for n, frames in zip(range(0, 40, 4), resumed_frames, strict=True):
        assert events_of(frames) == raw[n:]
        assert [f.id for f in frames if f.event is not None] == list(range(n + 1, len(raw) + 1))


async def test_connect_to_an_empty_or_idle_thread_completes(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        assert events_of(await connect(client, "nothing-yet")) == []
        assert events_of(await connect(client, "nothing-yet", 0)) == []


async def test_resume_from_every_position(
    official_client: OfficialClient, gateway: RunningGateway, agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    """For every N: what a client got up to id N, plus a resume after N, is the whole stream."""
    scripted, _ = agent
    thread_id = "every"
    runs = [
        (
            run_input(thread_id, f"e{i}", [user_message(f"u{i}", text)]),
            agent_run_events(thread_id, f"e{i}", text_deltas=4),
        )
        for i, text in ((1, "a"), (2, "b"))
    ]
    for body, events in runs:
        scripted.script(body["runId"], events)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        live = []
        for body, _ in runs:
            live += await collect(client, "POST", "/agents/scripted/run", json=body)
        stored = stored_log(gateway, thread_id)
        assert_stored_as_sent(stored, runs)
        raw = [served(r) for r in stored]
        assert events_of(live) == raw
        reference = official_client.replay(raw)
        assert reference.error is None, reference.error
        for index, n in id_positions(live):
            resumed = await connect(client, thread_id, n)
            assert events_of(resumed) == raw[n:], f"resume after {n}: duplicate or gap"
            assert [f.id for f in resumed if f.event is not None] == list(range(n + 1, len(raw) + 1))
            assert events_of(live)[: index + 1] + events_of(resumed) == raw
        fresh = await connect(client, thread_id)
        assert_fresh_id_rule(fresh, len(raw))
        assert_replays_to(official_client, "fresh", events_of(fresh), reference)
        assert events_of(await connect(client, thread_id, len(raw))) == []
