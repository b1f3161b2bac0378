"""Messages and events too big for one SSE frame, spread over several frames that the
official client applies to the same result.

The client refuses a frame longer than
:data:`~agui_gateway.protocol.types.CLIENT_SSE_BUFFER_LIMIT`. What makes a frame that big
is almost always one long string: a tool result holding a file, a search dump. The
client (``apply/default.ts``) appends a TEXT_MESSAGE_CONTENT delta to the ``content`` of
*any* message with that id that is not an activity (a user, tool, system or reasoning
message too), and a TEXT_MESSAGE_START naming a message that exists creates nothing.
So a message can travel with its ``content`` cut to ``""`` (every other field, and its
place in the list, as they are) and get the content back from
``TEXT_MESSAGE_START · TEXT_MESSAGE_CONTENT… · TEXT_MESSAGE_END`` on its id, each
delta under the budget: the message ends exactly as sent. The events carry no
``subagentRunId``, which ``verifyEvents`` always accepts on a continuation.

What cannot be cut this way stays whole (and a frame over the limit is then the
caller's to refuse): a content that is not a string (content parts, an activity's
object), tool-call arguments (restoring them needs a TOOL_CALL_START, which the client
counts as a call of the run it is in and reports pending at its end), a message id that
is not a string or occurs twice in the list, and any other field.

A state too big for a frame (:func:`state_events`) goes out as a STATE_SNAPSHOT of an
empty object (or array) and STATE_DELTAs that ``add`` its members back in order, each
delta under the budget, a member too big for one cut the same way one level down. A
string or number bigger than a frame stays whole (JSON Patch cannot append to a string).

Contents are cut only where every client is reset to the cut message first (a
MESSAGES_SNAPSHOT, or a fresh replay's history, which a client holding nothing
receives): a client holding the whole message would get its content twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.types import Event, Message

# A JSON-encoded string is at most 6 bytes per character (\u00XX), so a text of
# budget // 6 characters always fits and a longer one needs measuring.
_MAX_ESCAPE = 6


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as JSON (what a frame carries)."""
    return len(orjson.dumps(value))


def split_text(text: str, budget: int) -> list[str]:
    """Consecutive non-empty pieces of ``text``, each at most ``budget`` bytes as a JSON
    string (quotes included), joining back to ``text``. Cut between characters, so a
    piece is never an invalid string."""
    if budget < 2 + _MAX_ESCAPE:
        raise ValueError(f"a budget of {budget} bytes cannot hold a character")
    pieces: list[str] = []
    start, end_of_text = 0, len(text)
    while start < end_of_text:
        length = min(end_of_text - start, budget)  # a character is at least one byte
        while True:
            size = encoded_size(text[start : start + length])
            if size <= budget:
                break
            # Shrink in proportion to the overshoot; never below what surely fits.
            length = max((budget - 2) // _MAX_ESCAPE, length * (budget - 2) // (size - 2) - 1, 1)
        pieces.append(text[start : start + length])
        start += length
    return pieces


def _cuttable(message: Message, unique_ids: set[str]) -> bool:
    content = message.get("content")
    return (
        isinstance(content, str)
        and content != ""
        and message.get("role") != "activity"
        and message.get("id") in unique_ids
    )


def content_events(message_id: str, content: str, budget: int) -> list[Event]:
    """The events that append ``content`` to the message ``message_id`` already holds."""
    events: list[Event] = [{"type": ev.TEXT_MESSAGE_START, "messageId": message_id}]
    events += [
        {"type": ev.TEXT_MESSAGE_CONTENT, "messageId": message_id, "delta": piece}
        for piece in split_text(content, budget)
    ]
    events.append({"type": ev.TEXT_MESSAGE_END, "messageId": message_id})
    return events


@dataclass(frozen=True, slots=True)
class CutMessages:
    """Messages with some contents cut out, and the events that put them back.

    Apply ``messages`` (by a MESSAGES_SNAPSHOT or a RUN_STARTED input), then
    ``appends`` inside a run: the client holds the original messages.
    """

    messages: list[Message]
    appends: list[Event] = field(default_factory=list)

    @property
    def cut(self) -> bool:
        return bool(self.appends)


def cut_contents(messages: Sequence[Message], budget: int, *, together: bool) -> CutMessages:
    """Cut the string contents of the largest messages until they fit ``budget``.

    ``together``: until the JSON of the whole list fits (one frame holds them all, as a
    MESSAGES_SNAPSHOT inside a run must); otherwise until each message fits on its own
    (consecutive frames may carry them, as the history's RUN_STARTED inputs do). Only
    the messages that must be cut are, largest first; the others are the same objects.
    """
    sizes = [encoded_size(message) + 1 for message in messages]
    total = sum(sizes) + 1
    if (total <= budget) if together else all(size <= budget for size in sizes):
        return CutMessages(list(messages))
    counts = Counter(m.get("id") for m in messages)
    unique_ids = {mid for mid, n in counts.items() if n == 1 and isinstance(mid, str)}
    out = list(messages)
    cut: dict[int, str] = {}
    for index in sorted(range(len(out)), key=lambda i: sizes[i], reverse=True):
        if (total <= budget) if together else sizes[index] <= budget:
            break  # largest first: what is left fits
        message = out[index]
        if not _cuttable(message, unique_ids):
            continue
        cut[index] = message["content"]
        slim = dict(message)
        slim["content"] = ""
        out[index] = slim
        slim_size = encoded_size(slim) + 1
        total -= sizes[index] - slim_size
        sizes[index] = slim_size
    appends: list[Event] = []
    for index in sorted(cut):  # restore in list order: the client's onNewMessage order
        appends += content_events(out[index]["id"], cut[index], budget)
    return CutMessages(out, appends)


def _pointer(token: str | int) -> str:
    return "/" + (str(token) if isinstance(token, int) else token.replace("~", "~0").replace("/", "~1"))


def _add_ops(value: Any, path: str, budget: int, ops: list[dict[str, Any]]) -> None:
    """Ops that add ``value`` at ``path`` (which must not exist yet), each under ``budget``."""
    if encoded_size(value) + len(path) + 32 <= budget or not isinstance(value, (dict, list)) or not value:
        ops.append({"op": "add", "path": path, "value": value})
        return
    ops.append({"op": "add", "path": path, "value": {} if isinstance(value, dict) else []})
    members = value.items() if isinstance(value, dict) else enumerate(value)
    for key, member in members:
        _add_ops(member, path + _pointer(key), budget, ops)


def state_events(state: Any, budget: int) -> list[Event]:
    """A STATE_SNAPSHOT of ``state``, as one event when it fits ``budget``, otherwise as an
    empty snapshot and STATE_DELTAs adding the members back (see the module docs)."""
    if encoded_size(state) <= budget or not isinstance(state, (dict, list)):
        return [{"type": ev.STATE_SNAPSHOT, "snapshot": state}]
    ops: list[dict[str, Any]] = []
    members = state.items() if isinstance(state, dict) else enumerate(state)
    for key, member in members:
        _add_ops(member, _pointer(key), budget, ops)
    events: list[Event] = [{"type": ev.STATE_SNAPSHOT, "snapshot": {} if isinstance(state, dict) else []}]
    batch: list[dict[str, Any]] = []
    size = 0
    for op in ops:
        length = encoded_size(op) + 1
        if batch and size + length > budget:
            events.append({"type": ev.STATE_DELTA, "delta": batch})
            batch, size = [], 0
        batch.append(op)
        size += length
    if batch:
        events.append({"type": ev.STATE_DELTA, "delta": batch})
    return events


def split_event(event: Event, budget: int) -> list[Event]:
    """``event`` as events whose frames each fit ``budget``, applied to the same result.

    For a stored event on its way to a live client (an agent's TOOL_CALL_RESULT holding
    a whole file, say). ``[event]`` when it fits, or when nothing of it can be cut (see
    the module docs). Every event returned belongs where ``event`` stood, inside its run.
    """
    if encoded_size(event) <= budget:
        return [event]
    kind = event.get("type")
    if kind in (ev.TEXT_MESSAGE_CONTENT, ev.REASONING_MESSAGE_CONTENT, ev.TOOL_CALL_ARGS):
        delta = event.get("delta")
        if not isinstance(delta, str):
            return [event]
        room = budget - (encoded_size({**event, "delta": ""}) - 2)
        if room < 2 + _MAX_ESCAPE:
            return [event]
        return [{**event, "delta": piece} for piece in split_text(delta, room)]
    if kind == ev.TOOL_CALL_RESULT:
        content, message_id = event.get("content"), event.get("messageId")
        if not isinstance(content, str) or not isinstance(message_id, str):
            return [event]
        return [{**event, "content": ""}, *content_events(message_id, content, budget)]
    if kind == ev.STATE_SNAPSHOT:
        parts = state_events(event.get("snapshot"), budget)
        return [{**event, **parts[0]}, *parts[1:]]  # the first keeps the event's other fields
    if kind == ev.MESSAGES_SNAPSHOT:
        messages = event.get("messages")
        if not isinstance(messages, list):
            return [event]
        slim = cut_contents(messages, budget, together=True)
        return [{**event, "messages": slim.messages}, *slim.appends]
    # Not a RUN_STARTED input: it adds only the messages a client lacks, so a client
    # holding them whole (the caller) would get the appended contents twice.
    return [event]


def split_sequenced(event: Event, seq: int | None, budget: int) -> list[tuple[Event, int | None]]:
    """:func:`split_event` for a stored event and its SSE id: the id goes on the last part
    only, as in a compacted stretch (a client applies frames once an id covers them, and
    one cut off inside the parts resumes before the event, which it gets whole again)."""
    parts = split_event(event, budget)
    return [(part, None) for part in parts[:-1]] + [(parts[-1], seq)]


def fits(events: Sequence[Event], budget: int) -> bool:
    """Whether every event's JSON fits ``budget``."""
    return all(encoded_size(event) <= budget for event in events)
