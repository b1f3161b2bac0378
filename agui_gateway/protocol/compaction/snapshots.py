"""The replay form: finished runs folded into one synthetic run, the open run after
it in delta form; incremental and checkpointable."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import history_window_event
from agui_gateway.protocol.compaction.checkpoint import dump_checkpoint, load_checkpoint
from agui_gateway.protocol.compaction.deltas import DeltaCompactor
from agui_gateway.protocol.compaction.folding import FoldedRuns
from agui_gateway.protocol.compaction.frames import MAX_FRAME_BYTES
from agui_gateway.protocol.compaction.window import HistoryIndex, MessagePage
from agui_gateway.protocol.reducer import Reducer
from agui_gateway.protocol.types import Event, Message

# The events at which the compactor acts: a run opens, a run ends (and is folded).
_RUN_BOUNDARIES = frozenset({ev.RUN_STARTED}) | ev.TERMINAL_TYPES


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """A windowed replay's finished part (see :meth:`SnapshotCompactor.history_window`)."""

    events: list[Event]  # as finished_block(): the last one carries the folded seq
    older: int  # messages of the conversation before the window
    before: str | None  # the cursor of the page of them (None: nothing is older)


class SnapshotCompactor:
    """Folds finished runs into a replay snapshot, incrementally and checkpointably.

    Two parts: the folded runs (:class:`.folding.FoldedRuns`, a reducer holding the
    state at the last folded terminal event) and a :class:`.deltas.DeltaCompactor`
    of the open run (the events fed since the last fold). When a run's RUN_FINISHED /
    RUN_ERROR arrives, the open run's compacted events are folded and it starts over.
    """

    def __init__(self, folded: FoldedRuns | None = None) -> None:
        self._folded = folded if folded is not None else FoldedRuns()
        self._open_run = DeltaCompactor(start_seq=self._folded.folded_seq)
        self._open_run_id: str | None = None
        self._index: tuple[int, HistoryIndex] | None = None  # (folded seq, index of the folded messages)

    # --- feeding

    def feed(self, event: Event, seq: int | None = None) -> None:
        """Add the next event; ``seq`` defaults to one more than the last."""
        self._open_run.feed(event, seq)
        if event.get("type") in _RUN_BOUNDARIES:
            self._at_boundary(event)

    def feed_all(self, events: Iterable[Event]) -> None:
        """:meth:`feed` for a whole stream, at the delta compactor's speed."""
        stream = iter(events)
        while (boundary := self._open_run.feed_until(stream, _RUN_BOUNDARIES)) is not None:
            self._at_boundary(boundary)

    def _at_boundary(self, event: Event) -> None:
        if event.get("type") == ev.RUN_STARTED:
            run_id = event.get("runId")
            self._open_run_id = run_id if isinstance(run_id, str) else ""
            return
        self._folded.fold(self._open_run.events(), event, self._open_run.last_seq)
        self._open_run.clear()
        self._open_run_id = None

    # --- reading

    @property
    def last_seq(self) -> int:
        """Seq of the last event fed (or of the checkpoint's last folded event)."""
        return self._open_run.last_seq

    @property
    def folded_seq(self) -> int:
        """Seq of the last event folded: what a checkpoint written now covers."""
        return self._folded.folded_seq

    @property
    def run_open(self) -> bool:
        """A RUN_STARTED was fed that no terminal event has ended yet."""
        return self._open_run_id is not None

    @property
    def open_run_id(self) -> str | None:
        """The open run's ``runId`` ("" when it has none), ``None`` when no run is open."""
        return self._open_run_id

    def finished_block(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Event]:
        """The synthetic run standing for every finished run ([] before the first)."""
        return self._folded.block(max_frame_bytes)

    def open_run_events(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[tuple[Event, int | None]]:
        """Events fed after the last fold, delta-compacted, with their resumable ids (a
        merged delta past ``max_frame_bytes`` stays cut in parts, the id on the last)."""
        return self._open_run.sequenced(max_frame_bytes)

    def replay_events(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> list[Event]:
        """The whole replay: :meth:`finished_block`, then the open run's compacted events."""
        return self._folded.block(max_frame_bytes) + self._open_run.events(max_frame_bytes)

    # --- windows and pages

    def history_index(self) -> HistoryIndex:
        """Positions, run owners and window starts of the folded conversation, built
        once per fold (one pass over its messages) on first use."""
        cached = self._index
        if cached is not None and cached[0] == self._folded.folded_seq:
            return cached[1]
        index = HistoryIndex(self._folded.reducer.messages, self._folded.owners)
        self._index = (self._folded.folded_seq, index)
        return index

    def history_window(self, turns: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> HistoryWindow:
        """The finished part of a replay whose messages are those of the last ``turns``
        runs (see :mod:`.window`), with the thread's state and everything else
        :meth:`finished_block` has, and the window's CUSTOM event right after its first
        RUN_STARTED. Send :meth:`open_run_events` after it, as for a full replay.

        The window reaches back as far as the open run needs: to every message it names,
        to the start for a MESSAGES_SNAPSHOT. Before the first finished run: no events.
        """
        index = self.history_index()
        start = index.window_start(turns)
        if not self._open_run.empty:
            needed = index.earliest_reference(self._open_run.events())
            if needed is not None and needed < start:
                start = index.findable_at_or_before(needed)
        before = index.cursor(start)
        note = history_window_event(turns, start, before)
        return HistoryWindow(self._folded.block(max_frame_bytes, start, note), start, before)

    def messages_before(self, before: str, limit: int) -> MessagePage:
        """A page of the conversation's messages older than the message ``before``
        (:class:`.window.UnknownCursor` if there is none), oldest first, with the
        cursor of the page before it. Cut from the folded messages through
        :meth:`history_index` while the open run leaves them as they are (it only adds
        messages of its own); otherwise from :meth:`snapshot`."""
        index = self.history_index()
        untouched = self._open_run.empty or index.earliest_reference(self._open_run.events()) is None
        if untouched:
            try:
                return index.page_before(before, limit)
            except LookupError:
                if self._open_run.empty:
                    raise
        # A run is open that changed older messages, or the cursor is one of its own.
        return HistoryIndex(self.snapshot()[0], {}).page_before(before, limit)

    def snapshot(self) -> tuple[list[Message], Any]:
        """Copies of the current messages and state, the open run included."""
        messages, state = self._folded.reducer.snapshot()
        if self._open_run.empty:
            return messages, state
        current = Reducer(messages, state, client_view=False)
        current.apply_all(self._open_run.events())
        return current.snapshot()

    def message_ids(self) -> set[Any]:
        """Ids of the messages the thread holds now (cheap while no run is open)."""
        if self._open_run.empty:
            return {m.get("id") for m in self._folded.reducer.messages}
        return {m.get("id") for m in self.snapshot()[0]}

    # --- checkpoints

    def dumps(self) -> bytes:
        """Serialise the folded part (what a checkpoint stores; see :mod:`.checkpoint`)."""
        return dump_checkpoint(self._folded)

    @classmethod
    def loads(cls, data: bytes) -> SnapshotCompactor:
        """A compactor resuming after the checkpoint ``data`` (errors: :func:`.checkpoint.load_checkpoint`)."""
        return cls(load_checkpoint(data))


def compact_to_snapshots(events: Iterable[Event]) -> list[Event]:
    """The replay form of a thread log (see the package docs)."""
    compactor = SnapshotCompactor()
    compactor.feed_all(events)
    return compactor.replay_events()
