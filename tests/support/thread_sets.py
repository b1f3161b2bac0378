"""A set of threads as the gateway stores them, for the lifecycle tests: branches (a run's
annotation and the gateway's MESSAGES_SNAPSHOT), interrupts, errors and an open run.

The agents' events come from the testkit's generators; the records around them are
appended through the store API exactly as the gateway appends them (run ids, sources,
the branch annotation on a run's first RUN_STARTED).
"""

from __future__ import annotations

from typing import Any

from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.store.base import NewEvent, ThreadStore
from agui_testkit.generate import SHAPES, generate_log
from agui_testkit.shapes import LogShape

# thread id -> (shape, seed, the index of the run that branches from the first run, or None)
THREAD_SET: dict[str, tuple[LogShape, int, int | None]] = {
    "mixed": (SHAPES["mixed"].but(huge_tool_results=0), 11, 3),
    "errors": (SHAPES["error_runs"], 12, None),
    "interrupts": (SHAPES["tiny"].but(runs=5, outcomes=True, tool_calls_per_turn=(1, 2)), 13, 2),
    "open-run": (SHAPES["open_last_run"], 14, None),
    "state": (SHAPES["state_heavy"], 15, 1),
}


def _runs(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    runs: list[list[dict[str, Any]]] = []
    for event in events:
        if event.get("type") == "RUN_STARTED" or not runs:
            runs.append([])
        runs[-1].append(event)
    return runs


async def store_thread_set(store: ThreadStore) -> list[str]:
    """Append every thread of :data:`THREAD_SET` to ``store``; returns the thread ids."""
    for thread_id, (shape, seed, branch_at) in THREAD_SET.items():
        runs = _runs(generate_log(shape.but(thread_id=thread_id), seed))
        first_run_id = runs[0][0].get("runId")
        for index, run in enumerate(runs):
            run_id = run[0].get("runId")
            batch = [NewEvent(event, run_id) for event in run]
            if index == branch_at and run[0].get("type") == "RUN_STARTED":
                edited = {"id": f"edited-{index}", "role": "user", "content": "the question, edited"}
                note = {
                    "input": {"threadId": thread_id, "runId": run_id, "messages": [edited]},
                    "parentRunId": first_run_id,
                    "branch": True,
                }
                snapshot = NewEvent({"type": "MESSAGES_SNAPSHOT", "messages": [edited]}, run_id, "gateway")
                batch = [NewEvent(run[0], run_id, "agent", note), snapshot, *batch[1:]]
            for start in range(0, len(batch), 200):
                await store.append(thread_id, batch[start : start + 200])
    return list(THREAD_SET)


async def served_streams(store: ThreadStore, thread_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The thread's raw stream (every record as served) and its compacted replay, offline
    as ``agui-gateway compact`` makes it."""
    raw = [record.served async for record in store.read(thread_id)]
    compactor = SnapshotCompactor()
    compactor.feed_all(raw)
    return raw, compactor.replay_events()
