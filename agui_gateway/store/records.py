"""The stored line format shared by every backend.

One record is one JSON object ``{"seq", "runId", "ts", "source", "event"}``,
``seq`` first; a run's first RUN_STARTED also has a ``gateway`` annotation just
before ``event`` (what the gateway adds when serving it, see protocol.lineage).
Backends serialise the envelope without ``seq`` first
(:func:`encode_unsequenced`) and splice the seq in once it is assigned
(:func:`sequence_line`), so the file store and the Redis store (whose Lua script
does the splice server-side) produce byte-identical lines.

Because the stores write every line themselves, in this one shape, a reader that
only forwards the event (an SSE subscriber) can cut the event's bytes out of the
line (:func:`slice_event`) instead of decoding and re-encoding it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import orjson

from agui_gateway.store.base import ANNOTATION_KEY, NewEvent, StoredRecord, UnencodableEvent
from agui_gateway.store.open_runs import run_boundary

_SOURCES = ("agent", "gateway")


def encode_unsequenced(event: NewEvent, ts: int) -> bytes:
    """``{"runId":..,"ts":..,"source":..,"event":..}`` - the record without its seq."""
    if event.source not in _SOURCES:
        raise UnencodableEvent(f"source must be 'agent' or 'gateway', not {event.source!r}")
    if not isinstance(event.event, dict):
        raise UnencodableEvent("an event must be a JSON object (dict)")
    if event.annotation is not None and not isinstance(event.annotation, dict):
        raise UnencodableEvent("an annotation must be a JSON object (dict)")
    envelope: dict[str, Any] = {"runId": event.run_id, "ts": ts, "source": event.source}
    if event.annotation is not None:
        # Before the event: slice_event then does not match this line, and its
        # readers decode it and serve the event with the annotation merged in.
        envelope[ANNOTATION_KEY] = event.annotation
    envelope["event"] = event.event
    try:
        return orjson.dumps(envelope)
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise UnencodableEvent(f"event is not JSON-serialisable: {exc}") from exc


def sequence_line(seq: int, unsequenced: bytes) -> bytes:
    """The final stored line (with trailing newline) for an unsequenced envelope."""
    return b'{"seq":%d,' % seq + unsequenced[1:] + b"\n"


def batch_digest(events: Sequence[NewEvent]) -> str:
    """What identifies a batch across attempts: its events, run ids, sources and annotations
    (not the ``ts`` an attempt stamps), as 32 hex digits. Two attempts of one batch agree;
    an append with ``expect_seq`` tells its own batch, stored already, by it."""
    digest = hashlib.blake2b(digest_size=16)
    for new in events:
        try:
            digest.update(orjson.dumps([new.run_id, new.source, new.annotation, new.event]))
        except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
            raise UnencodableEvent(f"event is not JSON-serialisable: {exc}") from exc
        digest.update(b"\n")
    return digest.hexdigest()


def stored_batch_digest(records: Sequence[StoredRecord]) -> str:
    """:func:`batch_digest` of the batch that stored ``records``."""
    return batch_digest([NewEvent(r.event, r.run_id, r.source, r.annotation) for r in records])


def encode_record(record: StoredRecord) -> bytes:
    """One stored line (with trailing newline) for a record."""
    return orjson.dumps(record.to_json_dict()) + b"\n"


def decode_record(line: bytes | bytearray | memoryview) -> StoredRecord | None:
    """Parse one stored line (newline optional); None when it is not a valid record."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record_from_json(obj)


# Everything of a stored line before its event's opening brace, as sequence_line writes it.
# A runId holding a '"' (escaped in JSON) does not match: such a line is decoded instead.
_HEAD = re.compile(
    rb'\{"seq":([1-9][0-9]*),"runId":(?:null|"[^"]*"),"ts":-?[0-9]+,"source":"(?:agent|gateway)","event":(?=\{)'
)


def slice_event(line: bytes | memoryview) -> tuple[int, bytes | memoryview] | None:
    """``(seq, event JSON)`` cut out of a stored line (no newline), without decoding it.

    None unless the line starts exactly as :func:`sequence_line` writes it,
    ``{"seq":N,"runId":R,"ts":T,"source":S,"event":{``, and ends with ``}``; the
    caller then decodes it. The head is matched field by field (R is null or a
    string without quotes), so the event starts exactly where the envelope's
    ``event`` key ends, whatever the event or the runId contain, and runs to the
    envelope's closing brace.

    What follows the event is not checked: a line that merely starts like this
    (a hand edit with a key after ``event``, or broken JSON) would be cut wrongly.
    So only lines the store wrote itself may be served from here; the file
    store checks every line it did not write at open (:func:`decode_scan`).
    """
    head = _HEAD.match(line)
    if head is None or line[-1] != 0x7D:  # "}"
        return None
    return int(head[1]), line[head.end() : -1]


def decode_scan(line: bytes) -> tuple[int, int, bool, bool | None] | None:
    """``(seq, ts, sliceable, boundary)`` of a valid stored line, else None (:func:`decode_record`'s rule).

    ``sliceable``: :func:`slice_event` gives exactly this record's seq and the
    JSON of its event, i.e. bytes that decode to the event a decoding reader
    gets - checked here, by re-encoding, so that a reader need not decode.
    ``boundary``: whether the event opens a run (True), ends one (False) or
    neither (None), for the open-run index (:func:`~.open_runs.run_boundary`).
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not _is_record(obj):
        return None
    sliced = slice_event(line)
    sliceable = sliced is not None and sliced[0] == obj["seq"] and sliced[1] == orjson.dumps(obj["event"])
    return obj["seq"], obj["ts"], sliceable, run_boundary(obj["event"])


def record_from_json(obj: Any) -> StoredRecord | None:
    if not _is_record(obj):
        return None
    return StoredRecord(obj["seq"], obj["runId"], obj["ts"], obj["source"], obj["event"], obj.get(ANNOTATION_KEY))


def _is_record(obj: Any) -> bool:
    if not isinstance(obj, dict):
        return False
    seq, run_id = obj.get("seq"), obj.get("runId", 0)
    return (
        type(seq) is int
        and seq >= 1
        and (run_id is None or isinstance(run_id, str))
        and type(obj.get("ts")) is int
        and obj.get("source") in _SOURCES
        and isinstance(obj.get("event"), dict)
        and isinstance(obj.get(ANNOTATION_KEY, {}), dict)
    )
