"""What the server keeps per thread stays within its caps, however many threads are read.

Objects are counted, not memory measured (``bench/startup_bench.py`` measures resident
memory). The cyclic garbage collector is off here: the gateway runs it rarely
(``cli/process.py``), so whatever only it would free piles up with the threads read. Before,
every thread runtime was a reference cycle (its tail, its recovery and its reducer pointed
back to it; the tail's part is tested in ``fanout/test_tail.py``): reading 20,000 threads
once each grew the process by 54 MiB.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.servers import serve_gateway
from support.waiting import wait_until

from agui_gateway import Reducer, SnapshotCompactor
from agui_gateway.server.config import GatewayConfig
from agui_gateway.store.base import NewEvent
from agui_gateway.store.file import FileStore

CAP = 8
THREADS = 60
HANG = 30.0  # only stops a hang


@pytest.fixture
def no_cyclic_collector() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _finished_run(thread_id: str) -> list[NewEvent]:
    events = [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": "r1"},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{thread_id}-m", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{thread_id}-m", "delta": "hello"},
        {"type": "TEXT_MESSAGE_END", "messageId": f"{thread_id}-m"},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": "r1"},
    ]
    return [NewEvent(event, "r1") for event in events]


async def _fill(data_dir: Path, thread_ids: list[str]) -> None:
    store = FileStore(data_dir, fsync="never")
    await store.open()
    try:
        for thread_id in thread_ids:
            await store.append(thread_id, _finished_run(thread_id))
    finally:
        await store.close()


def test_a_reducer_is_freed_without_the_cyclic_collector(no_cyclic_collector: None) -> None:
    compactor = SnapshotCompactor()
    for record in _finished_run("t"):
        compactor.feed(record.event)
    reducer = Reducer().apply_all(record.event for record in _finished_run("t"))
    assert [m["content"] for m in reducer.messages] == ["hello"]
    refs = [weakref.ref(reducer), weakref.ref(compactor)]
    del reducer, compactor
    assert [ref() for ref in refs] == [None, None]


async def test_thread_runtimes_beyond_the_cap_are_freed_once_nothing_holds_them(
    tmp_path: Path, no_cyclic_collector: None
) -> None:
    data_dir = tmp_path / "data"
    read = [f"t{i:03d}" for i in range(THREADS)]
    await _fill(data_dir, read)
    with serve_gateway(GatewayConfig(data_dir=data_dir, cached_threads=CAP)) as gw:
        threads = gw.gateway.threads
        with httpx.Client(base_url=gw.url, timeout=HANG) as client:
            for thread_id in read:  # reads of many more threads than the cap
                response = client.get(f"/threads/{thread_id}/snapshot")
                assert response.status_code == 200
                assert response.json()["messages"][-1]["content"] == "hello"
        # Every runtime beyond the cap is gone once its request ended.
        wait_until(lambda: threads.alive <= CAP, HANG, what=f"at most {CAP} runtimes alive")
        assert threads.peek(read[0]) is None and threads.peek(read[-1]) is not None
