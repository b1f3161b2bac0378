"""History windows and message pages over the folded conversation.

A long thread opens with its latest turns: the replay's messages are a *window*, the
messages of the last N runs, and the older ones come in *pages* on demand. Both are
cut from the conversation the folded runs hold (:class:`.folding.FoldedRuns`) with a
:class:`HistoryIndex`, built once per fold, so a page costs its own messages, not a
fold of the thread.

Definitions (the README's "History windows" says the same for users):

* **The messages of a run**: the messages of the current conversation the run added
  (:meth:`.folding.FoldedRuns.fold`): those it holds at its end that the thread did not
  hold before it, and on a branch the messages of its input its parent's outcome
  lacked (a regenerated turn's user message). A message belongs to the latest run
  that added it. Runs whose messages a later branch dropped own none: they are not on
  the current branch.
* **The last N runs**: the N latest runs that own a message of the conversation. A
  run that added no message (one that failed at once) is not a turn.
* **The window for N**: the conversation from the first message owned by one of the
  last N runs to its end. So window and older messages split the conversation in two,
  and the pages and the window, concatenated, are the conversation exactly.
* **Cursors** are message ids. A window or page never starts at a message whose id
  occurs twice in the conversation (it could not be found again); it starts earlier.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.types import Event, Message

# Event fields naming a message, and naming a tool call, whose position a replay of
# the event depends on (see HistoryIndex.earliest_reference).
_MESSAGE_FIELDS = ("messageId", "parentMessageId", "entityId")
_TOOL_CALL_FIELDS = ("toolCallId", "entityId")


class UnknownCursor(LookupError):
    """A page cursor that names no message of the conversation (or one whose id occurs twice)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        super().__init__(f"no message {cursor!r} in the thread's conversation")


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Messages older than a cursor, oldest first, and the cursor of the page before them."""

    messages: list[Message]
    before: str | None  # None: this page starts the conversation

    def to_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "before": self.before}


class HistoryIndex:
    """Positions, owners and run starts of one conversation (the folded runs' messages).

    ``messages`` is held, not copied: build a new index after every fold (the compactor
    does). Building is one pass over the messages.
    """

    def __init__(self, messages: Sequence[Message], owners: Mapping[str, int]) -> None:
        self.messages = messages
        positions: dict[str, int] = {}
        duplicated: set[str] = set()
        run_of: list[int] = []
        for position, message in enumerate(messages):
            mid = message.get("id")
            if isinstance(mid, str):
                if mid in positions:
                    duplicated.add(mid)
                else:
                    positions[mid] = position
            run_of.append(owners.get(mid, 0) if isinstance(mid, str) else 0)
        for mid in duplicated:
            del positions[mid]
        self._positions = positions
        # Where a window may start: the positions at which the latest run seen so far
        # grows (a window for a threshold run T starts at the first message of a run >= T).
        self._starts: list[int] = []
        self._start_runs: list[int] = []
        latest = 0
        for position, run in enumerate(run_of):
            if run > latest:
                latest = run
                self._starts.append(position)
                self._start_runs.append(run)
        self._runs_newest_first = sorted(set(run_of) - {0}, reverse=True)
        self._tool_call_positions: dict[str, int] | None = None

    # -- windows

    @property
    def runs(self) -> int:
        """How many runs own messages of the conversation (the most ``turns`` can show)."""
        return len(self._runs_newest_first)

    def window_start(self, turns: int) -> int:
        """Where the window of the last ``turns`` runs starts (0: the whole conversation)."""
        if turns < 1:
            raise ValueError(f"turns must be at least 1, not {turns}")
        if turns >= len(self._runs_newest_first):
            return 0
        threshold = self._runs_newest_first[turns - 1]
        start = self._starts[bisect.bisect_left(self._start_runs, threshold)]
        return self.findable_at_or_before(start)

    def findable_at_or_before(self, position: int) -> int:
        """The nearest position at or before ``position`` whose message a cursor can name."""
        messages, positions = self.messages, self._positions
        while position > 0:
            mid = messages[position].get("id")
            if isinstance(mid, str) and positions.get(mid) == position:
                break
            position -= 1
        return position

    def cursor(self, position: int) -> str | None:
        """The cursor naming the messages before ``position`` (None at 0)."""
        if position <= 0:
            return None
        mid = self.messages[position].get("id")
        assert isinstance(mid, str) and self._positions.get(mid) == position, "not a findable position"
        return mid

    def earliest_reference(self, events: Iterable[Event]) -> int | None:
        """The first position the replay of ``events`` after the conversation depends on.

        A window must hold every message a later event names (text appended to it, a
        tool call or result attached to it, a RUN_STARTED input that would re-add it)
        or the client would apply the event differently; a MESSAGES_SNAPSHOT restates
        the whole conversation: 0. None when the events name no message of it.
        """
        earliest: int | None = None
        positions = self._positions

        def note(position: int | None) -> None:
            nonlocal earliest
            if position is not None and (earliest is None or position < earliest):
                earliest = position

        for event in events:
            kind = event.get("type")
            if kind == ev.MESSAGES_SNAPSHOT:
                return 0
            for key in _MESSAGE_FIELDS:
                value = event.get(key)
                if isinstance(value, str):
                    note(positions.get(value))
            for key in _TOOL_CALL_FIELDS:
                value = event.get(key)
                if isinstance(value, str):
                    note(self._tool_call_position(value))
            if kind == ev.RUN_STARTED and isinstance(event.get("input"), dict):
                for message in event["input"].get("messages") or ():
                    if isinstance(message, dict) and isinstance(message.get("id"), str):
                        note(positions.get(message["id"]))
        return earliest

    def _tool_call_position(self, tool_call_id: str) -> int | None:
        if self._tool_call_positions is None:
            found: dict[str, int] = {}
            for position, message in enumerate(self.messages):
                calls = message.get("toolCalls")
                if isinstance(calls, list):
                    for call in calls:
                        if isinstance(call, dict) and isinstance(call.get("id"), str):
                            found.setdefault(call["id"], position)
            self._tool_call_positions = found
        return self._tool_call_positions.get(tool_call_id)

    # -- pages

    def position(self, message_id: Any) -> int:
        """The position of the message a cursor names (:class:`UnknownCursor` if none)."""
        position = self._positions.get(message_id) if isinstance(message_id, str) else None
        if position is None:
            raise UnknownCursor(message_id)
        return position

    def page_before(self, before: str, limit: int) -> MessagePage:
        """Up to ``limit`` messages older than the message ``before`` (more when the page
        must start earlier to be findable), oldest first, and the next cursor."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        end = self.position(before)
        start = self.findable_at_or_before(max(0, end - limit))
        return MessagePage(list(self.messages[start:end]), self.cursor(start))
