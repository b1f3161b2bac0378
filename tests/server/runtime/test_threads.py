"""The registry of per-thread runtimes (server/runtime/registry.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.file import FileStore


async def test_registry_keeps_one_runtime_per_thread_and_evicts_only_idle_ones(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    await store.open()
    registry = ThreadRegistry(store, GatewayMetrics(), cached_threads=2)
    busy = registry.get("busy")
    busy.add_subscriber()  # a stream is open on it
    held = registry.get("held")
    registry.get("third")
    registry.get("fourth")  # over the cap: the idle, least recently used ones go
    assert registry.peek("busy") is busy  # never evicted while a stream uses it
    assert registry.get("held") is held  # evicted, but still referenced: the same runtime comes back
    gc.collect()
    assert registry.peek("third") is None  # evicted and unreferenced: gone
    await store.close()
