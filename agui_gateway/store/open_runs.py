"""The open-run index: which threads may have a run open, kept by every store.

A run is *open* when its RUN_STARTED is stored and no terminal event (RUN_FINISHED,
RUN_ERROR) follows it: the rule of the replay state (``SnapshotCompactor.run_open``),
read off the last run boundary of the log. A crash leaves such runs open, and the
gateway closes them at start-up; to find them without opening every thread, each
store keeps the set of threads whose log may end in an open run
(``ThreadStore.open_run_threads``), updated by the appends that open and close runs.

The one rule every index keeps: it never misses a thread whose log has an open run.
An extra entry is harmless (recovery opens the thread, finds nothing to close, and the
entry goes), so a store adds a thread *before* (or atomically with) the append that
may open a run, and may drop it lazily after the append that closes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agui_gateway.protocol.events import RUN_STARTED, TERMINAL_TYPES


def run_boundary(event: Any) -> bool | None:
    """True for an event that opens a run, False for one that ends it, None otherwise."""
    kind = event.get("type") if isinstance(event, dict) else None
    if kind == RUN_STARTED:
        return True
    if kind in TERMINAL_TYPES:
        return False
    return None


def open_after(events: Iterable[Any], before: bool) -> bool:
    """Whether a run is open after ``events`` (event dicts, in order), given the state ``before``."""
    state = before
    for event in events:
        boundary = run_boundary(event)
        if boundary is not None:
            state = boundary
    return state


def may_open(events: Iterable[Any]) -> bool:
    """Whether appending ``events`` can leave a run open: it holds a RUN_STARTED.

    Not whether it *does*: a batch that starts and ends a run may still be cut by a
    crash after its RUN_STARTED (a torn write keeps the whole lines before the tear),
    so the index takes the thread in before such a batch too.
    """
    return any(run_boundary(event) is True for event in events)


@dataclass(frozen=True, slots=True)
class OpenRunRepair:
    """What a full repair of the index (``ThreadStore.repair_open_runs``) found and changed."""

    threads: int  # threads whose logs were read
    open: tuple[str, ...]  # threads with an open run: the index now (sorted)
    added: tuple[str, ...]  # open runs the index had missed
    removed: tuple[str, ...]  # entries of threads without an open run
