"""Snapshot folding: every finished run of a thread held as one reducer state, and
the synthetic run that stands for all of them in a replay."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import run_started_event
from agui_gateway.protocol.compaction.frames import MAX_FRAME_BYTES, history_frames
from agui_gateway.protocol.reducer import Reducer
from agui_gateway.protocol.types import Event


def _reducer() -> Reducer:
    return Reducer(client_view=False)


@dataclass(slots=True)
class FoldedRuns:
    """The finished runs, folded: the state at the last folded terminal event and
    what the replay block needs besides it. This is what a checkpoint stores
    (:mod:`.checkpoint`)."""

    reducer: Reducer = field(default_factory=_reducer)
    passthrough: list[Event] = field(default_factory=list)  # CUSTOM and RAW, in order
    last_started: Event | None = None  # the last RUN_STARTED folded
    terminal: Event | None = None  # the last terminal event folded
    last_finished: Event | None = None  # the last RUN_FINISHED folded
    thread_id: str | None = None
    folded_seq: int = 0  # seq of the terminal event folded last

    def fold(self, run_events: list[Event], terminal: Event, seq: int) -> None:
        """Apply one run's (compacted) events, ``terminal`` their last, at ``seq``."""
        reducer = self.reducer
        for event in run_events:
            reducer.apply(event)
            kind = event.get("type")
            if kind in ev.PASSTHROUGH_TYPES:
                self.passthrough.append(event)
            elif kind == ev.RUN_STARTED:
                self.last_started = event
            thread_id = event.get("threadId")
            if isinstance(thread_id, str):
                self.thread_id = thread_id
        self.terminal = terminal
        if terminal.get("type") == ev.RUN_FINISHED:
            self.last_finished = terminal
        self.folded_seq = seq

    def block(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Event]:
        """The synthetic run standing for every finished run ([] before the first);
        its messages in frames under ``max_frame_bytes`` (see :func:`.frames.history_frames`)."""
        if self.terminal is None:
            return []
        started = self.last_started or {}
        thread_id: Any = started.get("threadId") or self.thread_id or ""
        run_id: Any = started.get("runId") or self.terminal.get("runId") or "compacted-history"
        reducer = self.reducer
        block = history_frames(thread_id, run_id, reducer.messages, max_frame_bytes)
        state = reducer.state
        if reducer.state_touched or state != {}:
            block.append({"type": ev.STATE_SNAPSHOT, "snapshot": state})
        block.extend(self.passthrough)
        if self.terminal.get("type") == ev.RUN_ERROR and reducer.pending_interrupts:
            # An interrupt outcome outlives a later RUN_ERROR in the client
            # (agent.pendingInterrupts): end the snapshot run with the RUN_FINISHED
            # that set it, then replay the failed run as a run of its own.
            assert self.last_finished is not None
            block += [self.last_finished, run_started_event(thread_id, f"{run_id}.failed")]
        block.append(self.terminal)
        return block
