"""The stored line format shared by every backend.

One record is one JSON object ``{"seq", "runId", "ts", "source", "event"}``,
``seq`` first. Backends serialise the envelope without ``seq`` first
(:func:`encode_unsequenced`) and splice the seq in once it is assigned
(:func:`sequence_line`), so the file store and the Redis store (whose Lua script
does the splice server-side) produce byte-identical lines.
"""

from __future__ import annotations

from typing import Any

import orjson

from agui_gateway.store.base import NewEvent, StoredRecord, UnencodableEvent

_SOURCES = ("agent", "gateway")


def encode_unsequenced(event: NewEvent, ts: int) -> bytes:
    """``{"runId":..,"ts":..,"source":..,"event":..}`` - the record without its seq."""
    if event.source not in _SOURCES:
        raise UnencodableEvent(f"source must be 'agent' or 'gateway', not {event.source!r}")
    if not isinstance(event.event, dict):
        raise UnencodableEvent("an event must be a JSON object (dict)")
    try:
        return orjson.dumps(
            {"runId": event.run_id, "ts": ts, "source": event.source, "event": event.event}
        )
    except TypeError as exc:  # orjson.JSONEncodeError subclasses TypeError
        raise UnencodableEvent(f"event is not JSON-serialisable: {exc}") from exc


def sequence_line(seq: int, unsequenced: bytes) -> bytes:
    """The final stored line (with trailing newline) for an unsequenced envelope."""
    return b'{"seq":%d,' % seq + unsequenced[1:] + b"\n"


def encode_record(record: StoredRecord) -> bytes:
    """One stored line (with trailing newline) for a record."""
    return orjson.dumps(record.to_json_dict()) + b"\n"


def decode_record(line: bytes) -> StoredRecord | None:
    """Parse one stored line (newline optional); None when it is not a valid record."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return record_from_json(obj)


def decode_seq_ts(line: bytes) -> tuple[int, int] | None:
    """``(seq, ts)`` of a valid stored line, else None - :func:`decode_record`'s rule, cheaper."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return (obj["seq"], obj["ts"]) if _is_record(obj) else None


def record_from_json(obj: Any) -> StoredRecord | None:
    if not _is_record(obj):
        return None
    return StoredRecord(obj["seq"], obj["runId"], obj["ts"], obj["source"], obj["event"])


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
    )
