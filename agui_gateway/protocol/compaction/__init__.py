"""Compaction of AG-UI event streams: pure functions over event dicts, no I/O.

Two forms, both checked against the official client (``tests/protocol/test_equivalence.py``):

``compact_events`` (delta form, :mod:`.deltas`)
    Concatenates the CONTENT / ARGS deltas of one message or tool call into one
    event, like the official ``compactEvents``, but without reordering anything
    else: a merged delta stands where its first part stood, and a run of deltas
    is cut wherever another event could observe or change the same message or
    tool call in between (its START/END, a tool call or result naming it, an
    activity snapshot reusing its id, a MESSAGES_SNAPSHOT, a run boundary, ...).
    Everything else (state, custom, steps, other messages' deltas) commutes
    with appending text to one target, so moving the later deltas up past it
    changes nothing the client ends with.

``compact_to_snapshots`` (replay form, :mod:`.snapshots`)
    All finished runs fold into one synthetic run (:mod:`.folding`): RUN_STARTED,
    one MESSAGES_SNAPSHOT, one STATE_SNAPSHOT (when there is state), the CUSTOM and
    RAW events in order, and the last run's own terminal event (so a final
    RUN_ERROR stays visible). The open run, if any, follows in delta form. The
    history goes out in frames the official client accepts (:mod:`.frames`), and
    the folded part is what a checkpoint stores (:mod:`.checkpoint`).

History windows and pages (:mod:`.window`): the replay of a thread's last N runs
(:meth:`SnapshotCompactor.history_window`) and the older messages page by page
(:meth:`SnapshotCompactor.messages_before`). Anything too big for one frame of the
official client is cut over several (:mod:`.split`).
"""

from agui_gateway.protocol.compaction.deltas import DeltaCompactor, compact_events, compact_sequenced
from agui_gateway.protocol.compaction.frames import MAX_FRAME_BYTES
from agui_gateway.protocol.compaction.snapshots import HistoryWindow, SnapshotCompactor, compact_to_snapshots
from agui_gateway.protocol.compaction.split import split_event, split_sequenced
from agui_gateway.protocol.compaction.window import HistoryIndex, MessagePage, UnknownCursor

__all__ = [
    "MAX_FRAME_BYTES",
    "DeltaCompactor",
    "HistoryIndex",
    "HistoryWindow",
    "MessagePage",
    "SnapshotCompactor",
    "UnknownCursor",
    "compact_events",
    "compact_sequenced",
    "compact_to_snapshots",
    "split_event",
    "split_sequenced",
]
