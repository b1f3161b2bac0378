"""The registry of per-thread runtimes (server/runtime/registry.py)."""

from __future__ import annotations

import gc
from pathlib import Path

from support.events import agent_run_events

from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.base import NewEvent
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


async def test_registry_byte_cap_counts_every_replay_state_alive(tmp_path: Path) -> None:
    """The byte cap reads one meter that each replay state keeps current: the least recently
    used idle runtime goes first, and only as many as the cap needs; one dropped while
    something still holds it keeps counting (its memory is not freed) until it is freed."""
    store = FileStore(tmp_path)
    await store.open()
    names = ("a", "b", "c", "d", "e")
    for name in names:  # the same run on each thread: replay states of equal size
        events = agent_run_events(name, "r1")
        await store.append(name, [NewEvent(event, "r1") for event in events])

    async def view(registry: ThreadRegistry, name: str) -> None:
        await registry.get(name).replay_view()

    measuring = ThreadRegistry(store, GatewayMetrics())
    await view(measuring, "a")
    one = measuring.replay_bytes.total
    assert one > 0
    del measuring
    gc.collect()

    registry = ThreadRegistry(store, GatewayMetrics(), cached_threads=100, cache_bytes=2 * one + one // 2)
    for name in ("a", "b", "c"):
        await view(registry, name)
    assert registry.replay_bytes.total == 3 * one  # over the cap, checked as a runtime comes in
    await view(registry, "d")  # "a", the least recently used, goes, and only it
    assert registry.peek("a") is None  # freed at once (no reference cycle keeps it)
    assert [name for name in names if registry.peek(name) is not None] == ["b", "c", "d"]
    assert registry.replay_bytes.total == 3 * one  # d's view came after the check

    held = registry.peek("b")  # as a stream would hold it
    await view(registry, "e")  # b goes from the cap but stays in memory: c goes too
    assert registry.peek("b") is held and registry.peek("c") is None
    assert registry.replay_bytes.total == 3 * one  # b (held), d, e
    del held
    assert registry.peek("b") is None
    assert registry.replay_bytes.total == 2 * one  # b freed: its bytes left the meter
    await store.close()
