"""The outage buffer's bounds (server/runtime/outage_buffer.py): items outside an outage, bytes
per run and for all runs during one, and the time budget (on a fake clock)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from agui_gateway.cli.serve import build_config, serve
from agui_gateway.server.config import ConfigError, GatewayConfig, load_config
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.outage_buffer import (
    OutageBuffer,
    OutageLimits,
    OutagePool,
    event_bytes,
)
from agui_gateway.upstream.run import AgentEvent


def delta(i: int, size: int = 100) -> AgentEvent:
    return AgentEvent({"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": f"{i:04d}" + "x" * size})


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pool(**limits: float) -> tuple[OutagePool, GatewayMetrics]:
    metrics = GatewayMetrics()
    return OutagePool(replace(OutageLimits.of(GatewayConfig()), **limits), metrics), metrics


async def test_outside_an_outage_the_reader_waits_at_the_item_bound() -> None:
    shared, _ = pool()
    buffer = OutageBuffer(shared, max_items=3)
    for i in range(3):
        assert await buffer.put(delta(i))
    blocked = asyncio.create_task(buffer.put(delta(3)))
    await asyncio.sleep(0)  # wait-ok: one turn of the loop, the put runs to where it waits
    assert not blocked.done() and len(buffer) == 3
    assert [item.event["delta"][:4] for item in await buffer.next_batch(2)] == ["0000", "0001"]
    buffer.stored(2)
    assert await asyncio.wait_for(blocked, 5)
    assert len(buffer) == 2 and buffer.bytes == 0  # bytes count only during an outage


async def test_during_an_outage_the_reader_goes_on_until_the_runs_bytes_run_out() -> None:
    size = event_bytes(delta(0))
    shared, metrics = pool(run_bytes=10 * size)
    buffer = OutageBuffer(shared, max_items=3)
    for i in range(3):
        assert await buffer.put(delta(i))
    assert buffer.outage_began() and not buffer.outage_began()  # one outage, however many failures
    assert buffer.bytes == 3 * size  # what it held when the outage began counts
    for i in range(3, 10):
        assert await buffer.put(delta(i))  # past the item bound
    assert not await buffer.put(delta(10))
    assert buffer.refused is not None and "run's outage buffer" in buffer.refused
    assert len(buffer) == 10 and shared.bytes == 10 * size and shared.events == 10
    assert metrics.outage_buffered_bytes._value.get() == 10 * size
    # In order, and let go only once stored.
    batch = await buffer.next_batch(64)
    assert [item.event["delta"][:4] for item in batch] == [f"{i:04d}" for i in range(10)]
    buffer.outage_ended()
    buffer.stored(len(batch))
    assert buffer.bytes == 0 and shared.bytes == 0 and shared.events == 0
    assert metrics.outage_buffered_events._value.get() == 0


async def test_all_runs_together_stay_within_the_total() -> None:
    size = event_bytes(delta(0))
    shared, _ = pool(run_bytes=100 * size, total_bytes=5 * size)
    first, second = OutageBuffer(shared, max_items=100), OutageBuffer(shared, max_items=100)
    first.outage_began()
    second.outage_began()
    for i in range(3):
        assert await first.put(delta(i))
    assert await second.put(delta(0)) and await second.put(delta(1))
    assert not await second.put(delta(2))
    assert second.refused is not None and "all runs" in second.refused
    first.stored(3)  # the first run's events are stored: room for the others again
    assert await second.put(delta(2))
    assert shared.bytes == 3 * size


async def test_the_time_budget_runs_from_the_outages_start() -> None:
    clock = FakeClock()
    shared, _ = pool(budget_s=1.5)
    buffer = OutageBuffer(shared, max_items=10, clock=clock)
    assert not buffer.over_time()  # no outage
    buffer.outage_began()
    clock.now += 1.4
    assert not buffer.over_time()
    clock.now += 0.1
    assert buffer.over_time()
    buffer.outage_ended()
    assert not buffer.over_time()
    buffer.outage_began()  # a new outage: a new budget
    assert not buffer.over_time()


async def test_the_writer_sees_the_end_once_everything_is_stored() -> None:
    shared, _ = pool()
    buffer = OutageBuffer(shared, max_items=10)
    assert await buffer.put(delta(0))
    buffer.close()
    batch = await buffer.next_batch(10)
    assert len(batch) == 1
    buffer.stored(1)
    assert await buffer.next_batch(10) == []


@pytest.mark.parametrize("held", [0, 4])
async def test_discard_gives_the_bytes_back(held: int) -> None:
    shared, _ = pool()
    buffer = OutageBuffer(shared, max_items=10)
    buffer.outage_began()
    for i in range(held):
        assert await buffer.put(delta(i))
    buffer.discard()
    assert len(buffer) == 0 and shared.bytes == 0 and shared.events == 0


def test_the_outage_settings_from_file_environment_and_flags(tmp_path: Path) -> None:
    defaults = GatewayConfig()
    assert (defaults.store_outage_budget_s, defaults.store_outage_buffer_bytes, defaults.store_outage_total_bytes) == (
        60.0,
        16 * 1024 * 1024,
        256 * 1024 * 1024,
    )
    path = tmp_path / "gateway.toml"
    path.write_text("store_outage_budget = 30\nstore_outage_buffer = 1000\nstore_outage_total_buffer = 5000\n")
    from_file = load_config(path, {})
    assert (from_file.store_outage_budget_s, from_file.store_outage_buffer_bytes) == (30.0, 1000)
    assert from_file.store_outage_total_bytes == 5000
    env = {"AGUI_GATEWAY_STORE_OUTAGE_BUDGET": "12.5", "AGUI_GATEWAY_STORE_OUTAGE_TOTAL_BUFFER": "9000"}
    from_env = load_config(path, env)
    assert (from_env.store_outage_budget_s, from_env.store_outage_total_bytes) == (12.5, 9000)
    # (build_config reads os.environ: none of these variables there)
    from_flags = build_config(config_file=path, store_outage_budget=2, store_outage_buffer=777)
    assert (from_flags.store_outage_budget_s, from_flags.store_outage_buffer_bytes) == (2.0, 777)
    result = CliRunner().invoke(
        serve, ["--config", str(path), "--store-outage-budget", "-1", "--data", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "store_outage_budget: must be at least 0" in result.output
    with pytest.raises(ConfigError, match="store_outage_buffer: expected a number"):
        load_config(None, {"AGUI_GATEWAY_STORE_OUTAGE_BUFFER": "lots"})
