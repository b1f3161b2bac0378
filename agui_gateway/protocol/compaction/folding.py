"""Snapshot folding: every finished run of a thread held as one reducer state, and
the synthetic run that stands for all of them in a replay."""

from __future__ import annotations

from collections.abc import Reversible
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import run_started_event
from agui_gateway.protocol.compaction.frames import MAX_FRAME_BYTES, history_frames
from agui_gateway.protocol.compaction.split import state_events
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
    # Which run added each message held (see :meth:`fold`): the run's number (1, 2, ...
    # in log order), by message id; and the number of each folded run id.
    runs: int = 0
    owners: dict[str, int] = field(default_factory=dict)
    run_numbers: dict[str, int] = field(default_factory=dict)
    # Where the reducer's ids stood at the last fold (count, index rebuilds); -1: unknown.
    _held: int = field(default=-1, repr=False, compare=False)
    _reindexes: int = field(default=-1, repr=False, compare=False)

    def fold(self, run_events: list[Event], terminal: Event, seq: int) -> None:
        """Apply one run's (compacted) events, ``terminal`` their last, at ``seq``.

        The messages a run adds are the ones it holds at its end that the thread did
        not hold before it, plus, on a branch (its RUN_STARTED names a ``parentRunId``,
        as the gateway serves a branch's), the messages of its input that the parent's
        outcome did not hold (an edited or regenerated turn restates its user message).
        A message belongs to the latest run that added it. A run with the runId of the
        run folded just before is the same run (logs of the first format record a run
        as the gateway's input run, then the agent's).
        """
        reducer = self.reducer
        claimed: list[str] = []
        number = self.runs + 1
        for event in run_events:
            reducer.apply(event)
            kind = event.get("type")
            if kind in ev.PASSTHROUGH_TYPES:
                self.passthrough.append(event)
            elif kind == ev.RUN_STARTED:
                number = self._number_run(event)
                claimed += self._claims(event)
            thread_id = event.get("threadId")
            if isinstance(thread_id, str):
                self.thread_id = thread_id
        self.terminal = terminal
        if terminal.get("type") == ev.RUN_FINISHED:
            self.last_finished = terminal
        self.folded_seq = seq
        self.runs = max(self.runs, number)
        self._take_owners(number, claimed)

    def _number_run(self, started: Event) -> int:
        run_id = started.get("runId")
        previous = self.last_started.get("runId") if self.last_started is not None else None
        self.last_started = started
        if isinstance(run_id, str) and run_id == previous and self.runs:
            return self.runs
        number = self.runs + 1
        if isinstance(run_id, str):
            self.run_numbers[run_id] = number
        return number

    def _claims(self, started: Event) -> list[str]:
        """The input messages a branch restates that its parent's outcome lacked."""
        parent = started.get("parentRunId")
        run_input = started.get("input")
        if not isinstance(parent, str) or not isinstance(run_input, dict):
            return []
        inputs = run_input.get("messages")
        base = self.run_numbers.get(parent, 0)
        owners = self.owners
        return [
            m["id"]
            for m in inputs or ()
            if isinstance(m, dict) and isinstance(m.get("id"), str) and owners.get(m["id"], base + 1) > base
        ]

    def _take_owners(self, number: int, claimed: list[str]) -> None:
        # Invariant: the owners' keys are the ids held at the last fold. While the
        # reducer did not rebuild its index, ids were only added, at its end: the run's
        # new ids are the tail past the last fold's count (no pass over the thread).
        # Otherwise (a MESSAGES_SNAPSHOT, say) two set operations over the dict views.
        owners = self.owners
        reducer = self.reducer
        held = reducer.message_ids()
        if self._held >= 0 and reducer.reindexes == self._reindexes:
            # A dict's keys view reverses in C (typeshed's KeysView does not say so).
            for added in islice(reversed(cast("Reversible[str]", held)), len(held) - self._held):
                owners[added] = number
        else:
            for gone in owners.keys() - held:
                del owners[gone]
            for added in held - owners.keys():
                owners[added] = number
        self._held, self._reindexes = len(held), reducer.reindexes
        for mid in claimed:
            if mid in owners:
                owners[mid] = number

    def block(self, max_frame_bytes: int = MAX_FRAME_BYTES, start: int = 0, note: Event | None = None) -> list[Event]:
        """The synthetic run standing for every finished run ([] before the first);
        its messages in frames under ``max_frame_bytes`` (see :func:`.frames.history_frames`).

        A window: only the messages from position ``start`` on, and ``note`` (the
        window's CUSTOM event) right after the first RUN_STARTED (``verifyEvents``
        wants a stream to open with RUN_STARTED).
        """
        if self.terminal is None:
            return []
        started = self.last_started or {}
        thread_id: Any = started.get("threadId") or self.thread_id or ""
        run_id: Any = started.get("runId") or self.terminal.get("runId") or "compacted-history"
        reducer = self.reducer
        messages = reducer.messages
        block = history_frames(thread_id, run_id, messages[start:] if start else messages, max_frame_bytes)
        if note is not None:
            block.insert(1, note)
        state = reducer.state
        if reducer.state_touched or state != {}:
            block += state_events(state, max_frame_bytes)
        block.extend(self.passthrough)
        if self.terminal.get("type") == ev.RUN_ERROR and reducer.pending_interrupts:
            # An interrupt outcome outlives a later RUN_ERROR in the client
            # (agent.pendingInterrupts): end the snapshot run with the RUN_FINISHED
            # that set it, then replay the failed run as a run of its own.
            assert self.last_finished is not None
            block += [self.last_finished, run_started_event(thread_id, f"{run_id}.failed")]
        block.append(self.terminal)
        return block
