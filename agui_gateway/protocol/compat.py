"""The stateless part of @ag-ui/client 1.0.0's inbound ``CompatibilityBoundary``.

The client runs every inbound event through this boundary before enforcement
(middleware/compatibility-boundary.ts, ``transformEvent``). Ported here is
everything it does that does not need per-stream state:

* legacy nulls become absent keys: ``rawEvent: null`` on any event,
  ``result: null`` on RUN_FINISHED / SUBAGENT_FINISHED, ``outcome: null`` on
  RUN_FINISHED, ``parentMessageId: null`` on TOOL_CALL_START / TOOL_CALL_CHUNK;
* inside MESSAGES_SNAPSHOT.messages and RUN_STARTED.input.messages, media parts'
  ``metadata: null`` is dropped and legacy ``{"type": "binary"}`` parts become
  modern media parts (middleware/legacy-content.ts);
* RUN_STARTED.input's ``forwardedProps``, ``tools[].parameters`` and
  ``resume[].payload`` nulls are dropped.

Without it, each of those nulls is a malformed known field that enforcement
rejects fatally, and a ``metadata: null`` / binary part would otherwise reach
the client's messages differently.

Not ported: the THINKING_* -> REASONING_* translation. It mints random UUIDs
for message ids, so no replay can match the client's messages exactly anyway;
those events stay untranslated and :func:`agui_gateway.protocol.schema.is_recognized_event`
reports them unrecognised, as enforcement would without the boundary.

Returns the input object itself when nothing changes, a shallow-copied one otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.js import strict_equals, truthy
from agui_gateway.protocol.types import Event

_MEDIA_PART_TYPES = frozenset({"image", "audio", "video", "document"})


def _omit_null(value: Any, field: str) -> Any:
    """``omitLegacyNull``: drop ``field`` when it is present and null."""
    if type(value) is not dict or field not in value or value[field] is not None:
        return value
    return {key: item for key, item in value.items() if key != field}


def _omit_null_field(event: Event, field: str) -> Event:
    """:func:`_omit_null` on an event, which stays an event."""
    without: Event = _omit_null(event, field)
    return without


def _map_array(value: Any, field: str, normalize: Callable[[Any], Any]) -> Any:
    """``mapProtocolArray``: normalize each entry; copy only if an entry changed."""
    if type(value) is not dict or type(value.get(field)) is not list:
        return value
    original = value[field]
    entries = [normalize(entry) for entry in original]
    if any(entry is not before for entry, before in zip(entries, original, strict=False)):
        return {**value, field: entries}
    return value


def _normalize_part_nulls(part: Any) -> Any:
    if type(part) is dict and part.get("type") in _MEDIA_PART_TYPES:
        return _omit_null(part, "metadata")
    return part


def _normalize_message_nulls(message: Any) -> Any:
    return _map_array(message, "content", _normalize_part_nulls)


def normalize_legacy_run_agent_input(run_input: Any) -> Any:
    """``normalizeLegacyRunAgentInput``: whole optional nulls accepted before 1.0 -> absent."""
    normalized = _omit_null(run_input, "forwardedProps")
    normalized = _map_array(normalized, "tools", lambda tool: _omit_null(tool, "parameters"))
    normalized = _map_array(normalized, "resume", lambda entry: _omit_null(entry, "payload"))
    return _map_array(normalized, "messages", _normalize_message_nulls)


# ---------------------------------------------------------------- legacy binary parts


def _is_legacy_binary(part: Any) -> bool:
    return type(part) is dict and part.get("type") == "binary" and type(part.get("mimeType")) is str


def _media_type(mime_type: str) -> str:
    for prefix in ("image", "audio", "video"):
        if mime_type.startswith(prefix + "/"):
            return prefix
    return "document"


def convert_binary_part(binary: Event) -> Event:
    """``convertBinaryToNewFormat``: a legacy part with ``data`` or ``url`` becomes a
    media part; one carrying only an ``id`` cannot be converted and is returned as is."""
    mime_type = binary["mimeType"]
    for key, source_type in (("data", "data"), ("url", "url")):
        if truthy(binary.get(key)):
            part: Event = {
                "type": _media_type(mime_type),
                "source": {"type": source_type, "value": binary[key], "mimeType": mime_type},
            }
            if truthy(binary.get("filename")):
                part["metadata"] = {"filename": binary["filename"]}
            return part
    return binary


def _matches_modern_part(part: Any, converted: Event, filename: Any) -> bool:
    if type(part) is not dict or "type" not in part:
        return False
    if not strict_equals(part["type"], converted["type"]) or "source" not in part:
        return False
    source, wanted = part["source"], converted["source"]
    if type(source) is not dict:
        return False
    for key in ("type", "value", "mimeType"):
        if key not in source or not strict_equals(source[key], wanted[key]):
            return False
    if not truthy(filename):
        return True
    metadata = part.get("metadata")
    return type(metadata) is dict and "filename" in metadata and strict_equals(metadata["filename"], filename)


def upgrade_message_content(message: Event) -> Event:
    """``upgradeMessageContent``: legacy binary parts -> media parts. A converted part
    whose modern twin is already in the message is dropped rather than duplicated."""
    raw_content = message.get("content")
    if type(raw_content) is not list:
        return message
    upgraded: list[Any] = []
    for part in raw_content:
        if _is_legacy_binary(part):
            converted = convert_binary_part(part)
            if converted.get("type") != "binary" and any(
                _matches_modern_part(other, converted, part.get("filename")) for other in raw_content
            ):
                continue
            upgraded.append(converted)
        else:
            upgraded.append(part)
    return {**message, "content": upgraded}


def upgrade_inbound_message(message: Any) -> Any:
    """``upgradeInboundMessage``: media-part nulls, then legacy binary parts."""
    message = _normalize_message_nulls(message)
    if type(message) is not dict:
        return message
    content = message.get("content")
    if type(content) is not list or not any(type(part) is dict and part.get("type") == "binary" for part in content):
        return message
    return upgrade_message_content(message)


# ---------------------------------------------------------------- events


def apply_compatibility_boundary(event: Event) -> Event:
    """What the client's boundary makes of one inbound event (THINKING_* aside)."""
    if "rawEvent" in event and event["rawEvent"] is None:
        event = _omit_null(event, "rawEvent")
    etype = event.get("type")
    if etype == ev.RUN_FINISHED or etype == ev.SUBAGENT_FINISHED:
        event = _omit_null(event, "result")
    if etype == ev.TOOL_CALL_START or etype == ev.TOOL_CALL_CHUNK:
        return _omit_null_field(event, "parentMessageId")
    if etype == ev.RUN_FINISHED:
        return _omit_null_field(event, "outcome")
    if etype == ev.MESSAGES_SNAPSHOT:
        messages = event.get("messages")
        if type(messages) is not list:
            return event
        return {**event, "messages": [upgrade_inbound_message(message) for message in messages]}
    if etype == ev.RUN_STARTED:
        run_input = event.get("input")
        normalized_input = normalize_legacy_run_agent_input(run_input)
        if normalized_input is not run_input:
            event = {**event, "input": normalized_input}
        if type(normalized_input) is not dict or type(normalized_input.get("messages")) is not list:
            return event
        return {
            **event,
            "input": {
                **normalized_input,
                "messages": [upgrade_inbound_message(message) for message in normalized_input["messages"]],
            },
        }
    return event
