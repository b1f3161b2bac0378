"""Soak: continuous runs, reconnecting clients, a stalled client and random resumes.

The gateway runs as a child process for ``SOAK_S`` seconds (``--slow``: an hour) under:

* a stream of agent runs (each resets the thread's messages with a MESSAGES_SNAPSHOT,
  so the thread's own state stays the same size and any growth is the gateway's);
* clients that connect fresh, read a little and drop, over and over;
* clients resuming from random ids, each checking it gets exactly the events after it;
* a client that never reads, held for the whole soak.

Resident memory and open descriptors are sampled throughout and printed as a table;
the last third of the samples must not sit above the first third (beyond noise).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.agents import ScriptedAgent
from support.events import run_input
from support.servers import GatewayProcess
from support.sse import SseReader, collect, events_of

SOAK_S = 120.0  # the default run: two minutes
SLOW_SOAK_S = 3600.0
SAMPLES = 12
MiB = 1024 * 1024


def soak_run(thread_id: str, run_id: str) -> list[dict[str, Any]]:
    base = [
        {"id": "u0", "role": "user", "content": "hello"},
        {"id": "a0", "role": "assistant", "content": "hi"},
    ]
    return (
        [
            {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id},
            {"type": "MESSAGES_SNAPSHOT", "messages": base},
            {"type": "STATE_SNAPSHOT", "snapshot": {"run": run_id, "n": 0}},
            {"type": "TEXT_MESSAGE_START", "messageId": f"{run_id}-m", "role": "assistant"},
        ]
        + [{"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{run_id}-m", "delta": f"word {i} "} for i in range(30)]
        + [
            {"type": "TEXT_MESSAGE_END", "messageId": f"{run_id}-m"},
            {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "/n", "value": 30}]},
            {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id},
        ]
    )


def _fds(gw: GatewayProcess) -> int:
    assert gw.proc is not None
    return len(os.listdir(f"/proc/{gw.proc.pid}/fd"))


@pytest.mark.parametrize(
    "duration", [pytest.param(SOAK_S, id="short"), pytest.param(SLOW_SOAK_S, id="hour", marks=pytest.mark.slow)]
)
async def test_soak(
    agent: tuple[ScriptedAgent, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], duration: float
) -> None:
    scripted, agent_url = agent
    thread_id = "soak"
    rng = random.Random(8)
    stats = {"runs": 0, "fresh": 0, "resumes": 0, "events_checked": 0}
    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}) as gw:
        limits = httpx.Limits(max_connections=None)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30, limits=limits) as client:
            # Warm-up: a few runs before the first sample.
            for i in range(5):
                run_id = f"warm{i}"
                scripted.script(run_id, soak_run(thread_id, run_id))
                await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, run_id))
            stalled = socket.create_connection(("127.0.0.1", gw.port))
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.sendall(f"GET /threads/{thread_id}/events?after=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            deadline = time.monotonic() + duration

            async def runner() -> None:
                n = 0
                while time.monotonic() < deadline:
                    run_id = f"s{n}"
                    n += 1
                    scripted.script(run_id, soak_run(thread_id, run_id))
                    frames = await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, run_id))
                    assert events_of(frames)[-1]["type"] == "RUN_FINISHED"
                    stats["runs"] += 1

            async def reconnecting() -> None:
                while time.monotonic() < deadline:
                    frames = await collect(
                        client, "GET", f"/threads/{thread_id}/events", until=lambda fs: any(f.id for f in fs)
                    )
                    assert events_of(frames)[0]["type"] == "RUN_STARTED"
                    stats["fresh"] += 1

            async def resuming() -> None:
                while time.monotonic() < deadline:
                    latest = int((await client.get(f"/threads/{thread_id}/snapshot")).json()["seq"])
                    after = rng.randint(0, latest)
                    ids: list[int] = []
                    parser = SseReader()
                    async with client.stream("GET", f"/threads/{thread_id}/events", params={"after": str(after)}) as r:
                        async for chunk in r.aiter_bytes():
                            ids += [f.id for f in parser.feed(chunk) if f.event is not None and f.id is not None]
                            if ids and ids[-1] >= latest:
                                break
                    assert ids == list(range(after + 1, ids[-1] + 1)) if ids else after == latest
                    stats["resumes"] += 1
                    stats["events_checked"] += len(ids)

            samples: list[tuple[float, int, int]] = []

            async def sampler() -> None:
                start = time.monotonic()
                for i in range(SAMPLES):
                    await asyncio.sleep(
                        max(0.0, start + duration * (i + 0.5) / SAMPLES - time.monotonic())
                    )  # wait-ok: sampling clock
                    samples.append((time.monotonic() - start, gw.rss_bytes(), _fds(gw)))

            await asyncio.gather(runner(), reconnecting(), reconnecting(), resuming(), resuming(), sampler())
            stalled.close()

    with capsys.disabled():
        print(f"\nsoak {duration:.0f} s: {stats}")
        print(f"{'t (s)':>8} {'RSS (MiB)':>10} {'fds':>5}")
        for at, rss, fds in samples:
            print(f"{at:8.1f} {rss / MiB:10.1f} {fds:5d}")
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]
    rss_first = sum(s[1] for s in first) / len(first)
    rss_last = sum(s[1] for s in last) / len(last)
    assert rss_last - rss_first < max(12 * MiB, 0.15 * rss_first), (
        f"RSS trends up: {rss_first / MiB:.1f} -> {rss_last / MiB:.1f} MiB"
    )
    assert max(s[2] for s in last) <= max(s[2] for s in first) + 8, f"descriptors trend up: {samples}"
    assert stats["runs"] > 10 and stats["resumes"] > 10 and stats["fresh"] > 10
