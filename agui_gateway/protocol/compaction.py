"""Compaction of AG-UI event streams: pure functions over event dicts, no I/O.

Two forms, both checked against the official client (``tests/test_equivalence*.py``):

``compact_events`` (delta form)
    Concatenates the CONTENT / ARGS deltas of one message or tool call into one
    event, like the official ``compactEvents``, but without reordering anything
    else: a merged delta stands where its first part stood, and a run of deltas
    is cut wherever another event could observe or change the same message or
    tool call in between (its START/END, a tool call or result naming it, an
    activity snapshot reusing its id, a MESSAGES_SNAPSHOT, a run boundary, ...).
    Everything else (state, custom, steps, other messages' deltas) commutes
    with appending text to one target, so moving the later deltas up past it
    changes nothing the client ends with.

``compact_to_snapshots`` (replay form)
    All finished runs fold into one synthetic run: RUN_STARTED, one
    MESSAGES_SNAPSHOT, one STATE_SNAPSHOT (when there is state), the CUSTOM and
    RAW events in order, and the last run's own terminal event (so a final
    RUN_ERROR stays visible). The open run, if any, follows in delta form.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.reducer import Reducer, _merge_metadata

Event = dict[str, Any]

# Events after which no pending delta may move: they read or replace many messages.
_GLOBAL_BARRIERS = frozenset({ev.MESSAGES_SNAPSHOT, ev.RUN_STARTED, ev.RUN_FINISHED, ev.RUN_ERROR} | ev.CHUNK_TYPES)
# Events that cannot observe or change any message's content or tool call's arguments.
_NEUTRAL = frozenset(
    {
        ev.STATE_SNAPSHOT,
        ev.STATE_DELTA,
        ev.CUSTOM,
        ev.RAW,
        ev.STEP_STARTED,
        ev.STEP_FINISHED,
        ev.REASONING_START,
        ev.REASONING_END,
        ev.REASONING_ENCRYPTED_VALUE,
        ev.SUBAGENT_STARTED,
        ev.SUBAGENT_FINISHED,
        ev.SUBAGENT_ERROR,
    }
)


# The official client fails a stream whose SSE buffer exceeds 10 MB (transform/sse.ts),
# so no single frame of a replay may be that large; stay well below.
MAX_FRAME_BYTES = 8 << 20


def _batches(messages: list[dict[str, Any]], budget: int) -> list[list[dict[str, Any]]]:
    """Consecutive groups of messages whose JSON stays under ``budget`` (one message at least)."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for message in messages:
        length = len(orjson.dumps(message)) + 1
        if batches[-1] and size + length > budget:
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += length
    return batches


class _Merged:
    """A run of deltas to one target, emitted where its first part stood."""

    __slots__ = ("field", "first", "last_seq", "metadata", "parts")

    def __init__(self, first: Event, field: str, seq: int) -> None:
        self.first = first
        self.field = field
        self.parts: list[str] = [first[field]]
        self.metadata: Any = first.get("metadata")
        self.last_seq = seq

    @property
    def count(self) -> int:
        return len(self.parts)

    def add(self, event: Event, seq: int) -> None:
        self.parts.append(event[self.field])
        if "metadata" in event:
            self.metadata = _merge_metadata(self.metadata, event["metadata"])
        self.last_seq = seq

    def event(self) -> Event:
        if len(self.parts) == 1:
            return self.first
        merged = dict(self.first)
        merged[self.field] = "".join(self.parts)
        if self.metadata is not None:
            merged["metadata"] = self.metadata
        return merged


# Delta event type -> (field naming its target, which group table it merges in).
# Text and reasoning deltas to one id append to the same content, so they are
# rivals: a delta of one kind closes the other kind's group for that id.
_DELTA_SPECS: dict[str, tuple[str, int, int | None]] = {
    ev.TEXT_MESSAGE_CONTENT: ("messageId", 0, 2),
    ev.TOOL_CALL_ARGS: ("toolCallId", 1, None),
    ev.REASONING_MESSAGE_CONTENT: ("messageId", 2, 0),
}


class DeltaCompactor:
    """Incremental :func:`compact_sequenced`: feed events, read the result any time."""

    def __init__(self) -> None:
        self.last_seq = 0
        self._reset()

    def _reset(self) -> None:
        self._frames: list[_Merged | tuple[Event, int]] = []
        # Open groups by target id: text content, tool-call args, reasoning content.
        self._groups: tuple[dict[Any, _Merged], ...] = ({}, {}, {})
        self._first_seq: int | None = None

    def __len__(self) -> int:
        return len(self._frames)

    def feed(self, event: Event, seq: int | None = None) -> None:
        """Add the next event; ``seq`` defaults to one more than the last."""
        if seq is None:
            seq = self.last_seq + 1
        self.last_seq = seq
        spec = _DELTA_SPECS.get(event.get("type"))  # type: ignore[arg-type]
        if spec is not None:
            group = self._groups[spec[1]].get(event.get(spec[0]))
            if group is not None and "metadata" not in event:
                delta = event.get("delta")
                if delta.__class__ is str:  # the hot path: one more piece of an open group
                    group.parts.append(delta)
                    group.last_seq = seq
                    return
            self._open_group(seq, event, spec)
            return
        if self._first_seq is None:
            self._first_seq = seq
        kind = event.get("type")
        self._barrier(kind, event)
        self._frames.append((event, seq))
        self._after_other(kind, event, seq)

    def feed_all(self, events: Iterable[Event]) -> None:
        """:meth:`feed` for a whole stream, with the hot path in the loop itself.

        Same result as calling :meth:`feed` for each event; on logs that are
        mostly streamed deltas it saves a call per event, which is a third of
        the cost of compaction.
        """
        groups = self._groups
        specs = _DELTA_SPECS
        seq = self.last_seq
        for event in events:
            seq += 1
            spec = specs.get(event.get("type"))  # type: ignore[arg-type]
            if spec is not None and "metadata" not in event:
                group = groups[spec[1]].get(event.get(spec[0]))
                if group is not None:
                    delta = event.get("delta")
                    if delta.__class__ is str:
                        group.parts.append(delta)
                        group.last_seq = seq
                        continue
            self.feed(event, seq)
            groups = self._groups  # a fold starts new group tables
        self.last_seq = seq

    def _after_other(self, kind: Any, event: Event, seq: int) -> None:
        """Hook: called after every event that is not a delta."""

    def _open_group(self, seq: int, event: Event, spec: tuple[str, int, int | None]) -> None:
        if self._first_seq is None:
            self._first_seq = seq
        key = event.get(spec[0])
        groups = self._groups[spec[1]]
        if not isinstance(event.get("delta"), str) or not isinstance(key, str):
            self._close_all()  # malformed: keep it exactly where it was
            self._frames.append((event, seq))
            return
        group = groups.get(key)
        if group is not None:  # carries metadata: fold it in the client's order
            group.add(event, seq)
            return
        if spec[2] is not None:
            self._groups[spec[2]].pop(key, None)
        group = _Merged(event, "delta", seq)
        groups[key] = group
        self._frames.append(group)

    def _barrier(self, kind: Any, event: Event) -> None:
        if kind in _NEUTRAL:
            return
        if kind in _GLOBAL_BARRIERS or kind not in ev.ALL_TYPES:
            self._close_all()
            return
        # Anything naming a message or tool call may observe or replace it.
        for field in ("messageId", "parentMessageId", "toolCallId"):
            key = event.get(field)
            if key is not None:
                for groups in self._groups:
                    groups.pop(key, None)

    def _close_all(self) -> None:
        for groups in self._groups:
            groups.clear()

    def events(self) -> list[Event]:
        return [f.event() if isinstance(f, _Merged) else f[0] for f in self._frames]

    def sequenced(self) -> list[tuple[Event, int | None]]:
        """The compacted events, each with the SSE id it may carry (see module docs)."""
        out: list[tuple[Event, int | None]] = []
        first = self._first_seq or 1
        covered = 0
        highest = first - 1
        for frame in self._frames:
            if isinstance(frame, _Merged):
                event = frame.event()
                covered += frame.count
                highest = max(highest, frame.last_seq)
            else:
                event, seq = frame
                covered += 1
                highest = max(highest, seq)
            out.append((event, highest if covered == highest - first + 1 else None))
        return out


def compact_sequenced(records: Iterable[tuple[int, Event]]) -> list[tuple[Event, int | None]]:
    """Delta-compact ``(seq, event)`` pairs; each output event comes with its resumable id.

    An output event carries id ``N`` exactly when the events it and all earlier
    outputs cover are the input seqs from the first one up to ``N`` and nothing
    later, so a client that resumes after ``N`` gets neither a gap nor a duplicate.
    """
    compactor = DeltaCompactor()
    for seq, event in records:
        compactor.feed(event, seq)
    return compactor.sequenced()


def compact_events(events: Iterable[Event]) -> list[Event]:
    """Order-preserving counterpart of the official ``compactEvents``."""
    compactor = DeltaCompactor()
    compactor.feed_all(events)
    return compactor.events()


class SnapshotCompactor(DeltaCompactor):
    """Folds finished runs into a replay snapshot, incrementally and checkpointably.

    It is the :class:`DeltaCompactor` of the open run (the events since the last
    fold), plus a reducer that always holds the state at the last folded
    terminal event. When a run's RUN_FINISHED / RUN_ERROR arrives, that run's
    compacted events are applied to the reducer and the delta part starts over.
    """

    def __init__(self) -> None:
        super().__init__()
        self._reducer = Reducer(client_view=False)
        self._passthrough: list[Event] = []
        self._last_started: Event | None = None
        self._terminal: Event | None = None
        self._last_finished: Event | None = None  # the last RUN_FINISHED folded
        self._thread_id: str | None = None
        self.folded_seq = 0
        self._open_run_id: str | None = None

    def _after_other(self, kind: Any, event: Event, seq: int) -> None:
        if kind == ev.RUN_STARTED:
            run_id = event.get("runId")
            self._open_run_id = run_id if isinstance(run_id, str) else ""
        elif kind in ev.TERMINAL_TYPES:
            self._fold(event, seq)

    def _fold(self, terminal: Event, seq: int) -> None:
        reducer = self._reducer
        for event in self.events():
            reducer.apply(event)
            kind = event.get("type")
            if kind in ev.PASSTHROUGH_TYPES:
                self._passthrough.append(event)
            elif kind == ev.RUN_STARTED:
                self._last_started = event
            thread_id = event.get("threadId")
            if isinstance(thread_id, str):
                self._thread_id = thread_id
        self._terminal = terminal
        if terminal.get("type") == ev.RUN_FINISHED:
            self._last_finished = terminal
        self.folded_seq = seq
        self._reset()
        self._open_run_id = None

    # --- reading

    @property
    def run_open(self) -> bool:
        return self._open_run_id is not None

    @property
    def open_run_id(self) -> str | None:
        return self._open_run_id

    def finished_block(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Event]:
        """The synthetic run standing for every finished run ([] before the first).

        Messages whose JSON exceeds ``max_frame_bytes`` do not go into one
        MESSAGES_SNAPSHOT (the official client refuses an SSE frame over 10 MB):
        they are carried, in order and in frames under the limit, by the
        ``input.messages`` of consecutive synthetic RUN_STARTED events, which
        the client appends exactly as a snapshot into an empty list would.
        """
        if self._terminal is None:
            return []
        started = self._last_started or {}
        thread_id = started.get("threadId") or self._thread_id or ""
        run_id = started.get("runId") or self._terminal.get("runId") or "compacted-history"
        head: Event = {"type": ev.RUN_STARTED, "threadId": thread_id, "runId": run_id}
        messages = self._reducer.messages
        block: list[Event] = []
        if not messages:  # a fresh client already holds none
            block.append(head)
        elif len(orjson.dumps(messages)) <= max_frame_bytes:
            block += [head, {"type": ev.MESSAGES_SNAPSHOT, "messages": messages}]
        else:
            batches = _batches(messages, max_frame_bytes)
            for number, batch in enumerate(batches[:-1], 1):
                part = f"{run_id}.history-{number}"
                block += [
                    {
                        "type": ev.RUN_STARTED,
                        "threadId": thread_id,
                        "runId": part,
                        "input": {"threadId": thread_id, "runId": part, "messages": batch},
                    },
                    {"type": ev.RUN_FINISHED, "threadId": thread_id, "runId": part},
                ]
            block.append({**head, "input": {"threadId": thread_id, "runId": run_id, "messages": batches[-1]}})
        state = self._reducer.state
        if self._reducer.state_touched or state != {}:
            block.append({"type": ev.STATE_SNAPSHOT, "snapshot": state})
        block.extend(self._passthrough)
        if self._terminal.get("type") == ev.RUN_ERROR and self._reducer.pending_interrupts:
            # An interrupt outcome outlives a later RUN_ERROR in the client
            # (agent.pendingInterrupts): end the snapshot run with the RUN_FINISHED
            # that set it, then replay the failed run as a run of its own.
            assert self._last_finished is not None
            block += [self._last_finished, dict(head, runId=f"{run_id}.failed")]
        block.append(self._terminal)
        return block

    def message_ids(self) -> set[str]:
        """Ids of the messages the thread holds now (cheap while no run is open)."""
        if len(self):
            return {m.get("id") for m in self.snapshot()[0]}  # type: ignore[misc]
        return {m.get("id") for m in self._reducer.messages}  # type: ignore[misc]

    def open_run_events(self) -> list[tuple[Event, int | None]]:
        """Events fed after the last fold, delta-compacted, with their resumable ids."""
        return self.sequenced()

    def replay_events(self) -> list[Event]:
        return self.finished_block() + self.events()

    def snapshot(self) -> tuple[list[dict[str, Any]], Any]:
        """Copies of the current messages and state, the open run included."""
        messages, state = self._reducer.snapshot()
        if not len(self):
            return messages, state
        current = Reducer(messages, state, client_view=False)
        current.apply_all(self.events())
        return current.snapshot()

    # --- checkpoints

    def dumps(self) -> bytes:
        """Serialise the finished part (what a checkpoint stores)."""
        return orjson.dumps(
            {
                "version": 1,
                "foldedSeq": self.folded_seq,
                "threadId": self._thread_id,
                "messages": self._reducer.messages,
                "state": self._reducer.state,
                "stateTouched": self._reducer.state_touched,
                "pendingInterrupts": self._reducer.pending_interrupts,
                "passthrough": self._passthrough,
                "lastStarted": self._last_started,
                "terminal": self._terminal,
                "lastFinished": self._last_finished,
            }
        )

    @classmethod
    def loads(cls, data: bytes) -> SnapshotCompactor:
        doc = orjson.loads(data)
        if doc.get("version") != 1:
            raise ValueError(f"unsupported checkpoint version {doc.get('version')!r}")
        compactor = cls()
        reducer = Reducer(doc["messages"], doc["state"], client_view=False)
        reducer.state_touched = bool(doc["stateTouched"])
        reducer.pending_interrupts = doc.get("pendingInterrupts") or []
        compactor._reducer = reducer
        compactor._thread_id = doc.get("threadId")
        compactor._passthrough = doc["passthrough"]
        compactor._last_started = doc["lastStarted"]
        compactor._terminal = doc["terminal"]
        compactor._last_finished = doc.get("lastFinished")
        compactor.folded_seq = compactor.last_seq = int(doc["foldedSeq"])
        return compactor


def compact_to_snapshots(events: Iterable[Event]) -> list[Event]:
    """The replay form of a thread log (see the module docstring)."""
    compactor = SnapshotCompactor()
    compactor.feed_all(events)
    return compactor.replay_events()
