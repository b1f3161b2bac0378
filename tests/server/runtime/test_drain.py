"""SIGTERM drains the gateway: runs in progress go on to their end (for up to the drain
timeout), new runs are refused with 503 + Retry-After, watchers end once their thread's
run has, every caller receives its run's terminal event, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, read_log, run_input
from support.servers import GatewayProcess
from support.sse import Frame, SseReader, events_of
from support.waiting import wait_until_async

HELD_AT = 3  # the agent writes its first events, then waits for the test


class _Stream:
    """A stream read to its end in the background: its status and frames as they arrive."""

    def __init__(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> None:
        self.status: int | None = None
        self.frames: list[Frame] = []
        self.task = asyncio.ensure_future(self._read(client, method, url, **kwargs))

    async def _read(self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> None:
        reader = SseReader()
        async with client.stream(method, url, **kwargs) as response:
            self.status = response.status_code
            async for chunk in response.aiter_bytes():
                self.frames.extend(reader.feed(chunk))

    @property
    def events(self) -> list[dict[str, Any]]:
        return events_of(self.frames)

    async def ended(self, timeout: float = 30) -> list[dict[str, Any]]:
        """The stream's events once the gateway has ended it (an error if it never does)."""
        await asyncio.wait_for(self.task, timeout)
        return self.events


async def _draining(client: httpx.AsyncClient) -> bool:
    answer = await client.get("/readyz")
    return answer.status_code == 503 and answer.json()["reason"].startswith("draining")


async def _start_held_run(
    client: httpx.AsyncClient, scripted: ScriptedAgent, thread_id: str, run_id: str
) -> tuple[_Stream, _Stream, Any]:
    """A run whose agent holds after its first events, its caller and a watcher of the thread."""
    script = scripted.script(run_id, agent_run_events(thread_id, run_id), hold_at=HELD_AT)
    caller = _Stream(client, "POST", "/agents/scripted/run", json=run_input(thread_id, run_id))
    await wait_until_async(lambda: len(caller.events) >= HELD_AT, timeout=20, what="the run's first events")
    watcher = _Stream(client, "GET", f"/threads/{thread_id}/events")
    await wait_until_async(lambda: len(watcher.events) >= HELD_AT, timeout=20, what="the watcher's replay")
    return caller, watcher, script


async def _exit_code(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    await wait_until_async(lambda: gw.proc is not None and gw.proc.poll() is not None, timeout=30, what="exit")
    return gw.proc.returncode


async def test_sigterm_lets_the_run_finish_refuses_new_runs_and_exits_0(
    tmp_path: Path, agent: tuple[ScriptedAgent, str]
) -> None:
    scripted, agent_url = agent
    data = tmp_path / "data"
    with GatewayProcess(data, {"scripted": agent_url}, "--drain-timeout", "30") as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
            caller, watcher, script = await _start_held_run(client, scripted, "drained", "r-drained")
            idle = _Stream(client, "GET", "/threads/idle/events")
            await wait_until_async(lambda: idle.status == 200, timeout=10, what="the idle watcher's answer")
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGTERM)
            # Still listening, and not ready: a load balancer sends no new work.
            await wait_until_async(lambda: _draining(client), timeout=10, what="readyz reporting the drain")
            refused = await client.post("/agents/scripted/run", json=run_input("another", "r-refused"))
            assert refused.status_code == 503 and refused.json()["code"] == "draining"
            assert refused.headers["retry-after"].isdigit()
            # A watcher of a thread without a run ends at once (it resumes on another replica);
            # the run and its caller go on.
            assert await idle.ended() == []
            assert gw.proc.poll() is None and not caller.task.done() and not watcher.task.done()
            script.release()
            called = await caller.ended()
            watched = await watcher.ended()
        assert called[-1]["type"] == "RUN_FINISHED" and watched[-1] == called[-1]
        assert await _exit_code(gw) == 0
    assert read_log(data, "drained")[-1]["event"]["type"] == "RUN_FINISHED"
    assert not (data / "threads" / "another").exists()


@pytest.mark.parametrize("how", ["deadline", "second signal"])
async def test_a_run_still_going_when_the_drain_ends_gets_its_run_error_to_its_caller(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], how: str
) -> None:
    scripted, agent_url = agent
    data = tmp_path / "data"
    timeout = "1" if how == "deadline" else "60"
    thread_id, run_id = f"cut-{how[0]}", f"r-cut-{how[0]}"
    with GatewayProcess(data, {"scripted": agent_url}, "--drain-timeout", timeout) as gw:
        try:
            async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
                caller, watcher, _script = await _start_held_run(client, scripted, thread_id, run_id)
                assert gw.proc is not None
                gw.proc.send_signal(signal.SIGTERM)
                if how == "second signal":
                    await wait_until_async(lambda: _draining(client), timeout=10, what="the drain")
                    gw.proc.send_signal(signal.SIGTERM)
                called = await caller.ended()
                watched = await watcher.ended()
            # The caller and the watcher receive the run's end before their streams close.
            assert called[-1]["type"] == "RUN_ERROR" and called[-1]["code"] == "gateway_shutdown"
            assert watched[-1] == called[-1]
            assert await _exit_code(gw) == 0
        finally:
            scripted.release_all()
    assert read_log(data, thread_id)[-1]["event"]["code"] == "gateway_shutdown"
