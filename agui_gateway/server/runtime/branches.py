"""A thread's runs and branches, read from its log (see ``protocol.lineage``).

Each function makes one pass over the stored log: they serve requests that are
rare next to appends and replays (a caller branching, listing runs, replaying
an earlier branch), so they keep no index in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from typing import Any

from agui_gateway.protocol.compaction import compact_to_snapshots
from agui_gateway.protocol.lineage import Parent, ParentFinder, RunIndex
from agui_gateway.server.errors import UnknownRun
from agui_gateway.store.base import ThreadStore
from agui_gateway.store.records import encode_record


async def branch_parent(store: ThreadStore, thread_id: str, caller_messages: Sequence[Any]) -> Parent:
    """The run whose outcome a branching caller's messages continue."""
    finder = ParentFinder(caller_messages)
    async with aclosing(store.read(thread_id)) as records:
        async for record in records:
            finder.feed(record.run_id, record.served)
    return finder.parent


async def run_index(store: ThreadStore, thread_id: str, figures: bool = False) -> RunIndex:
    """The thread's runs; with ``figures``, each run's times, records and stored bytes too
    (the bytes of each record encoded again: for ``/runs``, not for a branch's replay)."""
    index = RunIndex()
    async with aclosing(store.read(thread_id)) as records:
        async for record in records:
            if figures:
                size = len(encode_record(record))
                index.feed(record.seq, record.run_id, record.event, record.annotation, record.ts, size)
            else:
                index.feed(record.seq, record.run_id, record.event, record.annotation)
    return index


async def branch_events(store: ThreadStore, thread_id: str, run_id: str) -> list[dict[str, Any]]:
    """The replay of the branch that ends at ``run_id``, compacted as a fresh replay is.

    The runs of its lineage, in log order, through the same snapshot compaction
    as the thread's fresh replay; every record after the run's last is left out.
    """
    index = await run_index(store, thread_id)
    lineage = index.lineage(run_id)
    if lineage is None:
        raise UnknownRun(f"thread {thread_id!r} has no run {run_id!r}")
    spans = [(info.first_seq, info.last_seq) for info in index.runs if info.run_id in lineage]  # in seq order
    events = []
    span = 0
    async with aclosing(store.read(thread_id, after=spans[0][0] - 1)) as records:
        async for record in records:
            while span < len(spans) and record.seq > spans[span][1]:
                span += 1
            if span == len(spans):
                break
            if record.seq >= spans[span][0]:
                events.append(record.served)
    return compact_to_snapshots(events)
