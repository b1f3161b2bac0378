"""Waiting on the wall clock as a condition (stores stamp records in epoch milliseconds)."""

from __future__ import annotations

import asyncio
import time


async def next_millisecond() -> None:
    """Returns once the wall clock's millisecond has moved on, so the next record is newer."""
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == start:
        await asyncio.sleep(0)  # wait-ok: one loop turn while the clock reaches the next millisecond
