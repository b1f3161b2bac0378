"""The thread-changes hub (fanout/changes.py) holds a bounded number of thread ids per
subscriber, and the feed tells a page that fell that far behind to reload its list."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from support.servers import serve_gateway
from support.sse import FeedReader

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.fanout import changes as changes_module
from agui_gateway.server.fanout.changes import PENDING_MAX, ThreadChanges
from agui_gateway.store.base import NewEvent
from agui_gateway.store.file import FileStore

HANG = 10.0  # only stops a hang


async def test_a_subscriber_that_does_not_look_holds_at_most_the_bound() -> None:
    hub = ThreadChanges()
    with hub.subscribe() as subscription:
        for i in range(PENDING_MAX + 500):  # a page whose feed stopped reading: no take()
            hub.touch(f"t{i}")
            hub.deleted(f"d{i}")
            assert subscription.pending <= PENDING_MAX
        assert await subscription.wait(0) is True
        taken = subscription.take()
        assert taken.overflowed and not taken.touched and not taken.deleted
        # Looked at in time, it is exact again.
        hub.touch("a")
        hub.deleted("b")
        assert subscription.take() == (({"a"}, {"b"}, False))


async def test_the_feed_sends_ready_again_when_its_subscriber_overflowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes_module, "PENDING_MAX", 0)  # every change overflows
    store = FileStore(tmp_path / "data", fsync="never")
    await store.open()
    await store.append("gone", [NewEvent({"type": "CUSTOM", "name": "n", "value": 1}, None)])
    await store.close()
    with serve_gateway(GatewayConfig(data_dir=tmp_path / "data", heartbeat_s=0.2)) as gw:
        async with (
            httpx.AsyncClient(base_url=gw.url, timeout=HANG) as client,
            client.stream("GET", "/threads/changes") as response,
        ):
            feed = FeedReader(response)
            await feed.more()
            assert feed.frames == [("ready", b"{}")]
            assert (await client.delete("/threads/gone")).status_code == 204
            async with asyncio.timeout(HANG):  # heartbeats alone would go on forever
                await feed.more()  # not the thread_deleted frame it forgot: reload the list
            assert feed.frames[1:] == [("ready", b"{}")]
