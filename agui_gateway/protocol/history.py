"""Server-side history: the messages an agent gets when the gateway holds the thread.

With ``history = "gateway"`` a caller may send only its new messages; the agent
still needs the whole conversation. The gateway holds it: the official client's
view of the stored thread (what a replaying client ends with). This module merges
that view with what the caller sent. Pure: no I/O, messages are plain dicts.

Rules:
* every stored message comes first, in the thread's order;
* a caller's message whose id the thread does not hold is new: it follows, in the
  caller's order;
* a caller's message that reuses a stored id must say the same thing (the caller
  may be a client that replayed the thread and resends the transcript); if it says
  something else, the caller is rewriting history the agent already answered, and
  the merge refuses with :class:`HistoryConflict` instead of forwarding either
  version (the gateway, not the client, is the source of truth).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Message = dict[str, Any]


class HistoryConflict(ValueError):
    """A caller's message reuses a stored message id with different content."""

    def __init__(self, message_id: str, fields: Sequence[str]) -> None:
        self.message_id = message_id
        self.fields = tuple(fields)
        super().__init__(
            f"message {message_id!r} is already in the thread with different {', '.join(fields)}; "
            "the gateway keeps the thread's history: send new messages with new ids"
        )


def _meaningful(message: Message) -> Message:
    # An absent field and an explicit null mean the same to every AG-UI client.
    return {key: value for key, value in message.items() if value is not None}


def differing_fields(stored: Message, sent: Message) -> list[str]:
    """The fields in which ``sent`` says something other than ``stored`` (sorted)."""
    a, b = _meaningful(stored), _meaningful(sent)
    return sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))


def merge_history(stored: Sequence[Message], sent: Iterable[Any]) -> list[Message]:
    """The thread's messages followed by the caller's new ones; raises :class:`HistoryConflict`."""
    by_id = {message.get("id"): message for message in stored}
    merged = list(stored)
    added: set[str] = set()
    for message in sent:
        if not isinstance(message, dict):
            continue  # request validation rejects these before a run starts
        message_id = message.get("id")
        known = by_id.get(message_id)
        if known is not None:
            fields = differing_fields(known, message)
            if fields:
                raise HistoryConflict(str(message_id), fields)
            continue
        if isinstance(message_id, str) and message_id in added:
            continue  # the caller repeated a new message: forward it once
        if isinstance(message_id, str):
            added.add(message_id)
        merged.append(message)
    return merged
