"""Full disk and I/O errors: a clear error, every existing byte intact, recovery without a restart.

The gateway process runs with a small ``RLIMIT_FSIZE`` (portable, no mount needed; with
``SIGXFSZ`` ignored a write past it fails with ``EFBIG`` as a full disk fails with
``ENOSPC``): appends and checkpoint writes fail mid-run. The limit is then lifted from
outside (``prlimit``), as when space returns.
"""

from __future__ import annotations

import asyncio
import resource
import signal
from pathlib import Path

import httpx
import orjson
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input, served, user_message
from support.servers import GatewayProcess
from support.sse import Frame, SseReader, collect, events_of
from support.waiting import wait_until_async


def _ignore_sigxfsz() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _limit_file_size(pid: int, limit: int) -> None:
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


async def _follow(client: httpx.AsyncClient, method: str, url: str, frames: list[Frame], **kwargs: object) -> None:
    parser = SseReader()
    async with client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
        async for chunk in response.aiter_bytes():
            frames.extend(parser.feed(chunk))


async def test_a_full_disk_loses_nothing_stored_and_the_gateway_recovers_when_space_returns(
    agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, agent_url = agent
    data_dir = tmp_path / "data"
    thread_id = "full"
    log_path = data_dir / "threads" / thread_id / "log.jsonl"
    checkpoint_path = data_dir / "threads" / thread_id / "checkpoint.bin"
    with GatewayProcess(data_dir, {"scripted": agent_url}, preexec=_ignore_sigxfsz) as gw:
        assert gw.proc is not None
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            scripted.script("r1", agent_run_events(thread_id, "r1"))
            await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "r1"))
            await wait_until_async(checkpoint_path.exists)
            before_log, before_checkpoint = log_path.read_bytes(), checkpoint_path.read_bytes()

            events = agent_run_events(thread_id, "r2", text_deltas=60)
            script = scripted.script("r2", events, hold_at=5)
            caller: list[Frame] = []
            watcher: list[Frame] = []
            tasks = [
                asyncio.ensure_future(
                    _follow(
                        client,
                        "POST",
                        "/agents/scripted/run",
                        caller,
                        json=run_input(thread_id, "r2", [user_message("u2", "fill the disk")]),
                    )
                ),
                asyncio.ensure_future(
                    _follow(client, "GET", f"/threads/{thread_id}/events", watcher, params={"after": "0"})
                ),
            ]
            r2_started = len(before_log.splitlines()) + 5  # 5 agent events (the input rides on its RUN_STARTED)
            await wait_until_async(lambda: any(f.id == r2_started for f in caller), timeout=30)
            # The "disk" is full from here on, mid-run.
            before_log = log_path.read_bytes()
            _limit_file_size(gw.proc.pid, len(before_log))
            script.release()
            # Appends fail: the run cannot end yet (its end is not stored), nothing torn.
            await wait_until_async(lambda: "its end is not stored yet" in gw.log_path.read_text(), timeout=30)
            assert "storing its events failed" in gw.log_path.read_text()
            during = log_path.read_bytes()
            assert during == before_log, "existing bytes are intact, nothing torn or half-written"
            assert all(orjson.loads(line) for line in during.splitlines()), "no torn line"
            assert checkpoint_path.read_bytes() == before_checkpoint
            # The thread stays readable; a second run is refused while the first cannot end.
            assert (await client.get(f"/threads/{thread_id}/snapshot")).status_code == 200
            busy = await client.post("/agents/scripted/run", json=run_input(thread_id, "r3"))
            assert busy.status_code == 409

            # Space returns: the run's end is stored and reaches every client, no restart.
            _limit_file_size(gw.proc.pid, resource.RLIM_INFINITY)
            await asyncio.wait_for(tasks[0], 30)
            error = events_of(caller)[-1]
            assert error["type"] == "RUN_ERROR" and error["code"] == "gateway_storage_error"
            assert "storing the run's events failed" in error["message"]
            stored = [orjson.loads(line) for line in log_path.read_bytes().splitlines()]
            assert stored[-1]["event"] == error and stored[-1]["source"] == "gateway"
            assert [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
            await wait_until_async(lambda: any(f.event == error for f in watcher), timeout=30)
            assert [(f.id, f.event) for f in watcher if f.event is not None] == [(r["seq"], served(r)) for r in stored]
            tasks[1].cancel()
            await asyncio.gather(tasks[1], return_exceptions=True)
            # The thread takes runs again, and checkpoints are written again.
            scripted.script("r4", agent_run_events(thread_id, "r4"))
            after = await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "r4"))
            assert events_of(after)[-1]["type"] == "RUN_FINISHED"
            await wait_until_async(lambda: checkpoint_path.read_bytes() != before_checkpoint, timeout=30)

            # Full again when a run starts: nothing is stored when a run is accepted (the
            # caller's input rides on the run's own RUN_STARTED), so the run starts and its
            # first events cannot be stored. Nothing is torn; once space returns the run ends
            # as one whole run: the gateway's RUN_STARTED with the caller's message, then the
            # storage error. The next run is taken.
            full = log_path.read_bytes()
            retries = gw.log_path.read_text().count("its end is not stored yet")
            _limit_file_size(gw.proc.pid, len(full))
            scripted.script("r5", agent_run_events(thread_id, "r5"))
            body = run_input(thread_id, "r5", [user_message("u5", "again")])
            failing = asyncio.ensure_future(collect(client, "POST", "/agents/scripted/run", json=body, timeout=60))
            await wait_until_async(
                lambda: gw.log_path.read_text().count("its end is not stored yet") > retries, timeout=30
            )
            assert log_path.read_bytes() == full
            _limit_file_size(gw.proc.pid, resource.RLIM_INFINITY)
            ended = events_of(await failing)
            assert [e["type"] for e in ended] == ["RUN_STARTED", "RUN_ERROR"]
            assert ended[0]["input"]["messages"] == [user_message("u5", "again")]
            assert ended[-1]["code"] == "gateway_storage_error"
            scripted.script("r6", agent_run_events(thread_id, "r6"))
            body = run_input(thread_id, "r6", [user_message("u6", "and again")])
            taken = await collect(client, "POST", "/agents/scripted/run", json=body)
            assert events_of(taken)[0]["input"]["messages"] == [user_message("u6", "and again")]
            assert events_of(taken)[-1]["type"] == "RUN_FINISHED"
