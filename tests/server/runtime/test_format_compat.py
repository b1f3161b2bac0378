"""Logs written before issue 7 replay exactly as the version that wrote them served them.

``tests/fixtures/format-v1`` holds logs in the old record format (the gateway's own
``RUN_STARTED(input) · RUN_FINISHED`` run ahead of the agent's, and a dead agent's
``RUN_STARTED(input) · RUN_ERROR``) with what that version served for them: the
snapshot, a fresh replay and ``?after=0``, frames with their ids. ``legacy-stopped`` is
a run stopped before a stop became AG-UI 1.0's cancelled outcome (issue 20): its
``RUN_ERROR`` with code ``stopped`` is served as it was (``/runs`` lists the run as
``cancelled``, as it does a stop stored since).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.events import run_input, user_message
from support.official_client import assert_same_end
from support.servers import serve_gateway
from support.sse import collect, events_of, has_id

from agui_gateway.server.config import GatewayConfig

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "format-v1"


@pytest.mark.parametrize("thread_id", ["legacy", "legacy-dead", "legacy-stopped"])
async def test_a_log_of_the_previous_format_is_served_as_before(tmp_path: Path, thread_id: str) -> None:
    data = tmp_path / "data"
    (data / "threads" / thread_id).mkdir(parents=True)
    shutil.copy(FIXTURES / f"{thread_id}.jsonl", data / "threads" / thread_id / "log.jsonl")
    expected = json.loads((FIXTURES / f"{thread_id}.expected.json").read_text())
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            snapshot = (await client.get(f"/threads/{thread_id}/snapshot")).json()
            latest = snapshot["seq"]
            fresh = await collect(client, "GET", f"/threads/{thread_id}/events", until=has_id(latest))
            full = await collect(client, "GET", f"/threads/{thread_id}/events?after=0", until=has_id(latest))
            runs = (await client.get(f"/threads/{thread_id}/runs")).json()["runs"]
            exported = (await client.get(f"/threads/{thread_id}/log.jsonl")).content
    assert {k: snapshot[k] for k in ("messages", "state", "seq")} == expected["snapshot"]
    assert [{"id": f.id, "event": f.event} for f in fresh if f.event is not None] == expected["fresh"]
    assert [{"id": f.id, "event": f.event} for f in full if f.event is not None] == expected["after0"]
    assert exported == (FIXTURES / f"{thread_id}.jsonl").read_bytes()  # nothing rewritten, nothing added
    # The gateway's input run and the agent's run with the same id list as one run.
    lines = [json.loads(line) for line in exported.splitlines()]
    assert [r["runId"] for r in runs] == list(dict.fromkeys(r["runId"] for r in lines))
    assert [r["parentRunId"] for r in runs] == [None, *[r["runId"] for r in runs[:-1]]]
    assert runs[-1]["lastSeq"] == len(lines) and runs[0]["firstSeq"] == 1


async def test_a_new_run_continues_a_log_of_the_previous_format(tmp_path: Path, official_client: Any) -> None:
    data = tmp_path / "data"
    (data / "threads" / "legacy").mkdir(parents=True)
    shutil.copy(FIXTURES / "legacy.jsonl", data / "threads" / "legacy" / "log.jsonl")
    with serve_gateway(GatewayConfig(data_dir=data, demo=True, demo_pace=0)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            before = (await client.get("/threads/legacy/snapshot")).json()
            history = [*before["messages"], user_message("u3", "And the weather in Oslo?")]
            body = run_input("legacy", "r3", history, state=before["state"])
            caller = events_of(await collect(client, "POST", "/agents/demo/run", json=body))
            after = (await client.get("/threads/legacy/snapshot")).json()
            fresh = await collect(client, "GET", "/threads/legacy/events", until=has_id(after["seq"]))
            runs = (await client.get("/threads/legacy/runs")).json()["runs"]
    assert caller[0]["input"]["messages"] == [user_message("u3", "And the weather in Oslo?")]
    assert [(r["runId"], r["parentRunId"], r["branch"]) for r in runs] == [
        ("r1", None, False),
        ("r2", "r1", False),
        ("r3", "r2", False),
    ]
    assert after["messages"][: len(before["messages"]) + 1] == history
    replayed = official_client.replay(events_of(fresh))
    assert replayed.error is None and (replayed.messages, replayed.state) == (after["messages"], after["state"])
    # The old records and the new ones replay in order through the official client as well,
    # to the same end as the fresh replay (pending interrupts included).
    raw = official_client.replay(
        [*(e["event"] for e in json.loads((FIXTURES / "legacy.expected.json").read_text())["after0"]), *caller]
    )
    assert raw.error is None and (raw.messages, raw.state) == (after["messages"], after["state"])
    assert_same_end("a fresh replay of the continued legacy log", replayed, raw)


async def test_a_stop_stored_as_run_error_is_listed_as_cancelled(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "threads" / "legacy-stopped").mkdir(parents=True)
    shutil.copy(FIXTURES / "legacy-stopped.jsonl", data / "threads" / "legacy-stopped" / "log.jsonl")
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            runs = (await client.get("/threads/legacy-stopped/runs")).json()["runs"]
    last = json.loads((FIXTURES / "legacy-stopped.jsonl").read_bytes().splitlines()[-1])["event"]
    assert last == {"type": "RUN_ERROR", "message": "the run was stopped by a client (POST /stop)", "code": "stopped"}
    assert [(r["runId"], r["status"]) for r in runs] == [("s1", "cancelled")]  # a stop, however stored
