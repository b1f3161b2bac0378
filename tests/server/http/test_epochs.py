"""Thread epochs on the wire, on a real server, on the file store and on Redis.

Every id a stream hands out is ``EPOCH:SEQ``; the snapshot, the runs listing and a stop
name the epoch beside their seqs. A thread deleted and written again has another epoch,
so an id of the old one (``Last-Event-ID`` or ``after``, on ``/events``, ``/connect`` or
``/log.jsonl``) is answered 409 ``thread_recreated``, never with the new thread's events
at those positions; an id of the current epoch resumes as before, and a bare integer (a
client that cannot tell) keeps its meaning: a position in the thread as it is now.

And deleting claims the thread: a run started while the delete is under way is refused,
so it cannot write the thread again under the delete.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, user_message
from support.servers import RunningGateway, serve_gateway, serve_scripted_gateway
from support.sse import Frame, collect, events_of, last_raw_id
from support.waiting import wait_until_async

from agui_gateway.server.config import GatewayConfig
from agui_gateway.store.base import Deletion
from agui_gateway.store.file import FileStore


@pytest.fixture
def gateway(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], store_overrides: dict[str, Any]
) -> Iterator[RunningGateway]:
    with serve_scripted_gateway(tmp_path / "data", agent[1], heartbeat_s=0.2, **store_overrides) as gw:
        yield gw


async def _run(client: httpx.AsyncClient, scripted: ScriptedAgent, thread_id: str, run_id: str) -> list[Frame]:
    scripted.script(run_id, agent_run_events(thread_id, run_id, tools=1))
    body = run_input(thread_id, run_id, [user_message(f"u-{run_id}", f"hello from {run_id}")])
    frames = await collect(client, "POST", "/agents/scripted/run", json=body)
    assert events_of(frames)[-1]["type"] == "RUN_FINISHED"
    return frames


async def _events(client: httpx.AsyncClient, thread_id: str, upto: int, **kwargs: Any) -> list[Frame]:
    """``/events`` until the frame with seq ``upto`` (a watcher's stream never ends)."""

    def reached(frames: list[Frame]) -> bool:
        return any(f.id is not None and f.id >= upto for f in frames)

    return await collect(client, "GET", f"/threads/{thread_id}/events", until=reached, **kwargs)


def _refusal(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


async def test_ids_carry_the_epoch_and_an_id_from_before_a_delete_is_refused(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        posted = await _run(client, scripted, "t-ep", "r1")
        snapshot = (await client.get("/threads/t-ep/snapshot")).json()
        old_epoch, latest = snapshot["epoch"], snapshot["seq"]
        assert isinstance(old_epoch, str) and len(old_epoch) == 16 and latest > 4
        # Every id of every stream, and the JSON positions, name the epoch.
        fresh = await _events(client, "t-ep", latest)
        full = await _events(client, "t-ep", latest, params={"after": "0"})
        connect = await collect(client, "POST", "/agents/scripted/connect", json=run_input("t-ep", "c1"))
        for frames in (posted, fresh, full, connect):
            ids = [f.raw_id for f in frames if f.raw_id is not None]
            assert ids and all(raw == f"{old_epoch}:{raw.rpartition(':')[2]}" for raw in ids), ids
        assert [f.id for f in full if f.id is not None] == list(range(1, latest + 1))
        runs = (await client.get("/threads/t-ep/runs")).json()
        assert runs["epoch"] == old_epoch

        # The same epoch resumes as before; a bare integer too, from the same position.
        middle = next(f.raw_id for f in full if f.id == 3)
        by_id = await _events(client, "t-ep", latest, headers={"last-event-id": middle})
        by_after = await _events(client, "t-ep", latest, params={"after": middle})
        by_int = await _events(client, "t-ep", latest, params={"after": "3"})
        after_three = [f.event for f in full if f.id is not None and f.id > 3]
        for frames in (by_id, by_after, by_int):
            assert events_of(frames) == after_three
        old_id = last_raw_id(full)
        assert old_id is not None

        # Deleted and written again: another epoch; the old ids are refused wherever they go.
        assert (await client.delete("/threads/t-ep")).status_code == 204
        await _run(client, scripted, "t-ep", "r2")
        new = (await client.get("/threads/t-ep/snapshot")).json()
        assert new["epoch"] != old_epoch and new["seq"] > 3
        refusals = [
            await client.get("/threads/t-ep/events", params={"after": old_id}),
            await client.get("/threads/t-ep/events", headers={"last-event-id": middle}),
            # The header wins over the query (EventSource keeps the URL it started with).
            await client.get("/threads/t-ep/events", params={"after": "0"}, headers={"last-event-id": old_id}),
            await client.post(
                "/agents/scripted/connect", json=run_input("t-ep", "c2"), headers={"last-event-id": old_id}
            ),
            await client.get("/threads/t-ep/log.jsonl", params={"after": middle}),
        ]
        for refused in refusals:
            assert _refusal(refused) == (409, "thread_recreated"), refused.text
            assert refused.json()["details"] == {"epoch": old_epoch, "currentEpoch": new["epoch"]}

        # A bare integer is a position in the thread as it is now: the new thread's events.
        new_full = await _events(client, "t-ep", new["seq"], params={"after": "0"})
        by_int = await _events(client, "t-ep", new["seq"], params={"after": "3"})
        assert events_of(by_int) == [f.event for f in new_full if f.id is not None and f.id > 3]
        assert {e.get("runId") for e in events_of(new_full) if e["type"] == "RUN_STARTED"} == {"r2"}
        assert all(f.epoch == new["epoch"] for f in new_full if f.raw_id is not None)

        # An id whose epoch part is no epoch is a 400, as any malformed id.
        for bad in ("XYZ:3", ":3", "a-b:3", f"{old_epoch}:x"):
            malformed = await client.get("/threads/t-ep/events", params={"after": bad})
            assert _refusal(malformed) == (400, "invalid_resume_position"), bad


async def test_an_id_of_a_thread_deleted_since_is_refused_even_before_it_is_written_again(
    gateway: RunningGateway, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, _ = agent
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        old_id = last_raw_id(await _run(client, scripted, "t-gone", "g1"))
        assert old_id is not None
        assert (await client.delete("/threads/t-gone")).status_code == 204
        connect = await client.post(
            "/agents/scripted/connect", json=run_input("t-gone", "c1"), headers={"last-event-id": old_id}
        )
        assert _refusal(connect) == (409, "thread_recreated")
        assert connect.json()["details"]["currentEpoch"] is None
        # /events tells this gateway's deletion first: the thread is gone.
        events = await client.get("/threads/t-gone/events", headers={"last-event-id": old_id})
        assert _refusal(events) == (404, "thread_not_found")
        # A fresh connect of the (now empty) thread is no error.
        fresh = await collect(client, "POST", "/agents/scripted/connect", json=run_input("t-gone", "c2"))
        assert events_of(fresh) == []


class _HeldDelete(FileStore):
    """A file store whose deletes wait for :attr:`go` once they have begun."""

    def __init__(self, data: Path) -> None:
        super().__init__(data)
        self.holding = threading.Event()
        self.go = threading.Event()

    async def delete_thread(
        self, thread_id: str, *, idle_before_ms: int | None = None, even_if_leased: bool = False
    ) -> Deletion:
        self.holding.set()
        await asyncio.to_thread(self.go.wait, 30)
        return await super().delete_thread(thread_id, idle_before_ms=idle_before_ms, even_if_leased=even_if_leased)


async def test_a_run_started_while_the_thread_is_being_deleted_is_refused(
    tmp_path: Path, agent: tuple[ScriptedAgent, str]
) -> None:
    """Between the delete's look for a run in progress and the store's delete, a run would
    be admitted (the file store knows nothing of runs) and write the thread again."""
    scripted, url = agent
    data = tmp_path / "data"
    store = _HeldDelete(data)
    config = GatewayConfig(data_dir=data, agents={"scripted": url})
    with serve_gateway(config, store=store) as gw:
        try:
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as client:
                await _run(client, scripted, "t-race", "r1")
                deleting = asyncio.create_task(client.delete("/threads/t-race"))
                await wait_until_async(store.holding.is_set, timeout=10, what="the delete under way")
                scripted.script("r2", agent_run_events("t-race", "r2", tools=0))
                started = await client.post(
                    "/agents/scripted/run", json=run_input("t-race", "r2", [user_message("u2", "again")])
                )
                assert started.status_code == 409, "a run was admitted while the thread was being deleted"
                assert started.json()["code"] == "conflict"
                assert "being deleted" in started.json()["error"]
                store.go.set()
                assert (await deleting).status_code == 204
                gone = await client.get("/threads/t-race/snapshot")
                assert _refusal(gone) == (404, "thread_not_found")
                # Once deleted, the id takes runs again: a new thread.
                await _run(client, scripted, "t-race", "r3")
        finally:
            store.go.set()
