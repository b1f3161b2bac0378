"""The checkpoint format: :class:`.folding.FoldedRuns` as bytes (one JSON object).

Version 2 fields: ``foldedSeq``, ``threadId``, ``messages``, ``state``,
``stateTouched``, ``pendingInterrupts``, ``passthrough``, ``lastStarted``,
``terminal``, ``lastFinished``, and which run added each message: ``runs`` (the
number of the last run folded), ``owners`` (message id -> run number) and
``runNumbers`` (run id -> run number). Stores keep these bytes opaque. A version 1
checkpoint (no owners) is refused like any unreadable one: the gateway then rebuilds
the thread's state from its log, once.
"""

from __future__ import annotations

from typing import Final

import orjson

from agui_gateway.protocol.compaction.folding import FoldedRuns
from agui_gateway.protocol.reducer import Reducer

CHECKPOINT_VERSION: Final = 2


def dump_checkpoint(folded: FoldedRuns) -> bytes:
    """Serialise the folded runs."""
    reducer = folded.reducer
    return orjson.dumps(
        {
            "version": CHECKPOINT_VERSION,
            "foldedSeq": folded.folded_seq,
            "threadId": folded.thread_id,
            "messages": reducer.messages,
            "state": reducer.state,
            "stateTouched": reducer.state_touched,
            "pendingInterrupts": reducer.pending_interrupts,
            "passthrough": folded.passthrough,
            "lastStarted": folded.last_started,
            "terminal": folded.terminal,
            "lastFinished": folded.last_finished,
            "runs": folded.runs,
            "owners": folded.owners,
            "runNumbers": folded.run_numbers,
        }
    )


def load_checkpoint(data: bytes) -> FoldedRuns:
    """The folded runs of :func:`dump_checkpoint`'s bytes.

    Raises ``ValueError`` (orjson's decode error included), ``KeyError`` or
    ``TypeError`` when the bytes are not a checkpoint of this version.
    """
    doc = orjson.loads(data)
    if doc.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"unsupported checkpoint version {doc.get('version')!r}")
    reducer = Reducer(doc["messages"], doc["state"], client_view=False, take=True)
    reducer.state_touched = bool(doc["stateTouched"])
    reducer.pending_interrupts = doc.get("pendingInterrupts") or []
    return FoldedRuns(
        reducer=reducer,
        passthrough=doc["passthrough"],
        last_started=doc["lastStarted"],
        terminal=doc["terminal"],
        last_finished=doc.get("lastFinished"),
        thread_id=doc.get("threadId"),
        folded_seq=int(doc["foldedSeq"]),
        runs=int(doc["runs"]),
        owners=dict(doc["owners"]),
        run_numbers=dict(doc["runNumbers"]),
    )
