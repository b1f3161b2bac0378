"""Start-up in O(runs a crash left open): only the threads of the store's open-run index are
opened, in the background, while the process answers; ``/readyz`` tells when that is done.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
from support.events import agent_run_events, read_log
from support.servers import serve_gateway
from support.waiting import wait_until_async

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.gateway import Gateway
from agui_gateway.store.base import Checkpoint, NewEvent
from agui_gateway.store.file import FileStore

FINISHED = 40
CRASHED = 3


async def _threads_on_disk(data: Path) -> None:
    """``FINISHED`` threads with a whole run, ``CRASHED`` whose process died mid-run."""
    store = FileStore(data)
    await store.open()
    try:
        for n in range(FINISHED):
            events = agent_run_events(f"done-{n}", "r1", text_deltas=2, tools=1)
            await store.append(f"done-{n}", [NewEvent(e, "r1", "agent") for e in events])
        for n in range(CRASHED):
            events = agent_run_events(f"crashed-{n}", "r1", text_deltas=2, tools=1)[:-1]  # no terminal event
            await store.append(f"crashed-{n}", [NewEvent(e, "r1", "agent") for e in events])
    finally:
        await store.close()


def _builds(gateway: Gateway) -> float:
    value = gateway.metrics.registry.get_sample_value("agui_gateway_checkpoint_builds_total")
    assert value is not None, "the checkpoint-builds metric is missing"
    return value


async def test_start_up_opens_only_the_threads_with_a_run_left_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _threads_on_disk(data)
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        gateway = gw.app.state.gateway
        # Only the crashed threads were read at start, whatever the number of threads.
        assert _builds(gateway) == CRASHED
        assert gateway.readiness.recovered == CRASHED and gateway.readiness.failed == 0
        async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
            assert (await client.get("/readyz")).json() == {"status": "ready"}
    for n in range(CRASHED):
        last = read_log(data, f"crashed-{n}")[-1]
        assert last["event"]["type"] == "RUN_ERROR" and last["event"]["code"] == "gateway_restarted"
    for n in range(FINISHED):
        assert read_log(data, f"done-{n}")[-1]["event"]["type"] == "RUN_FINISHED"


class _HeldStore(FileStore):
    """A file store whose first load of one thread's checkpoint waits for :attr:`go`."""

    def __init__(self, data: Path, held: str) -> None:
        super().__init__(data)
        self.held = held
        self.holding = threading.Event()
        self.go = threading.Event()

    async def load_checkpoint(self, thread_id: str) -> Checkpoint | None:
        if thread_id == self.held and not self.go.is_set():
            self.holding.set()
            await asyncio.to_thread(self.go.wait, 30)
        return await super().load_checkpoint(thread_id)


async def test_the_gateway_answers_during_start_up_recovery_and_reads_wait_for_their_thread_only(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    await _threads_on_disk(data)
    store = _HeldStore(data, held="crashed-0")
    with serve_gateway(GatewayConfig(data_dir=data), store=store, ready=False) as gw:
        try:
            async with httpx.AsyncClient(base_url=gw.url, timeout=20) as client:
                await wait_until_async(store.holding.is_set, timeout=10, what="the held thread's recovery")
                assert (await client.get("/healthz")).status_code == 200
                not_ready = await client.get("/readyz")
                assert not_ready.status_code == 503 and not_ready.json()["reason"].startswith("starting")
                # Another thread reads at once, while the held one is being recovered.
                other = await client.get("/threads/done-0/snapshot")
                assert other.status_code == 200 and other.json()["running"] is False
                # A read of the held thread waits for its recovery, and never sees the run open.
                held_log = asyncio.create_task(client.get("/threads/crashed-0/log.jsonl"))
                store.go.set()
                records = (await held_log).content.splitlines()
                assert b'"code":"gateway_restarted"' in records[-1]
                await wait_until_async(
                    lambda: gw.app.state.gateway.readiness.started.is_set(), timeout=10, what="start-up done"
                )
                assert (await client.get("/readyz")).status_code == 200
        finally:
            store.go.set()
