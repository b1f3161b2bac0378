"""Runs as a caller sees them: what a run adds to its thread, the branch it forms, the lineage.

Pure functions over messages and events (no I/O); the server decides with them
what to record when a run starts, and the routes list runs and replay branches
with them.

The thread's messages are the official client's view of the stored log (the
compactor's snapshot). A caller's ``RunAgentInput.messages`` either *continue*
them (every message the thread holds is in the input, unchanged and in order;
the input may add more at the end: the user's new message, a frontend tool's
result) or form a *branch* (edit, regenerate, delete: a stored message is missing
or changed). What a run records, beside the agent's events (which stay as sent):

* on the run's first RUN_STARTED, an annotation ``{"input": ..., "parentRunId":
  ..., "branch": true}`` (the envelope's ``gateway`` field) that every served
  stream merges into the event: ``input`` holds the caller's new messages (and
  its ``resume``), ``parentRunId`` (branches only) the run whose outcome the
  caller's history continues;
* right after that RUN_STARTED, gateway events the client applies in place: a
  MESSAGES_SNAPSHOT of the caller's messages on a branch (RUN_STARTED input only
  ever appends, so a client holding the old branch needs the snapshot to drop
  what the caller dropped) and on a run that resumes an interrupt (its events
  answer tool calls of the run before: the snapshot makes it readable alone);
  and a STATE_SNAPSHOT of the caller's state when it differs from the thread's
  (``setState`` before a run; an empty state is what stateless clients always
  send and is not taken as one) and on every branch (a branch runs on the
  caller's state, not on the parent's).

Since a branch restates the caller's messages and state, replaying the log in
order (fresh, resumed, compacted, ``agui-gateway compact``) always ends on the
branch of the last run; a branch that ends at an earlier run is replayed from
that run's lineage (:meth:`RunIndex.lineage`).

A caller holding a *window* (the latest turns of a long thread, maybe with some
older pages) sends a suffix of the conversation: :func:`window_conversation` puts
the older messages back in front of it, and the rule above then decides on the
whole conversation (so an edit inside the window is still a branch). What the run
records never outgrows a frame of the official client: the branch's
MESSAGES_SNAPSHOT and the RUN_STARTED input travel with their largest contents cut
out and appended after (:mod:`.compaction.split`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import CANCELLED_OUTCOME, STOPPED_CODE
from agui_gateway.protocol.compaction.frames import MAX_FRAME_BYTES
from agui_gateway.protocol.compaction.split import cut_contents, encoded_size, state_events
from agui_gateway.protocol.reducer import Reducer
from agui_gateway.protocol.types import Event

Message = Mapping[str, Any]  # read-only here: a stored message or one of the caller's

# The client never sends these back (prepareRunAgentInput strips them), so a
# caller's input missing them says nothing about its history.
_CLIENT_ONLY_ROLES = frozenset({"activity"})


def served_event(event: Event, annotation: Mapping[str, Any] | None) -> Event:
    """The event a client gets for a stored event and its gateway annotation.

    The annotation's ``input`` and ``parentRunId`` are set on the event (the
    gateway's recorded input replaces one the agent sent: it is the one that
    describes this run against the thread's history); other keys stay in the
    envelope.
    """
    if not annotation:
        return event
    served = dict(event)
    if "input" in annotation:
        served["input"] = annotation["input"]
    if isinstance(annotation.get("parentRunId"), str):
        served["parentRunId"] = annotation["parentRunId"]
    return served


def _fingerprint(message: Message) -> bytes:
    """What makes two messages the same for the caller: the fields the client keeps."""
    calls = message.get("toolCalls")
    call_keys = None
    if isinstance(calls, list):
        call_keys = [
            (c.get("id"), (c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments"))
            for c in calls
            if isinstance(c, dict)
        ]
    return orjson.dumps(
        [message.get("role"), message.get("content"), message.get("toolCallId"), call_keys],
        option=orjson.OPT_SORT_KEYS,
    )


def _message_id(message: Any) -> str | None:
    mid = message.get("id") if isinstance(message, Mapping) else None
    return mid if isinstance(mid, str) else None


def continues(thread_messages: Sequence[Message], caller_messages: Sequence[Any]) -> bool:
    """Whether the caller's messages continue the thread's (see the module docstring):
    every stored message is there, unchanged and in order, and every new one after them.

    A caller that shares no message with a non-empty thread is taken to send only
    its new messages (a client that does not resend the transcript), not to have
    deleted the whole thread: that continues too.
    """
    caller = {mid: m for m in caller_messages if (mid := _message_id(m)) is not None}
    order = {mid: i for i, mid in enumerate(caller)}
    kept = [m for m in thread_messages if m.get("role") not in _CLIENT_ONLY_ROLES]
    if not any(_message_id(m) in caller for m in kept):
        return True
    last = -1
    for message in kept:
        mid = _message_id(message)
        if mid is None or mid not in caller:
            return False
        if order[mid] < last or not same_message(caller[mid], message):
            return False
        last = order[mid]
    # New messages go after the thread's (RUN_STARTED input appends them): one the
    # caller put before a stored message is a change of history, not a continuation.
    known = {_message_id(m) for m in kept}
    return all(mid in known for mid in list(caller)[: last + 1])


def window_conversation(thread_messages: Sequence[Message], caller_messages: Sequence[Any]) -> list[Any]:
    """The caller's whole conversation, when it holds only the latest part of the thread's.

    A caller *holds a window* when its first message is a stored one at a position
    ``s > 0`` of the thread's messages and none of the messages before ``s`` is among
    its own: it sent a suffix, as a client that opened the thread with its latest turns
    (and maybe loaded some older pages) does. Its conversation is then the thread's
    messages before ``s`` (those the client keeps: no activity messages) followed by
    its own, and that is what the run continues or branches from and what the agent
    gets. Anything else: the caller's messages as sent.

    The case this cannot tell apart: a caller that deleted the first messages of the
    conversation (and nothing else) looks exactly like one holding a window, and
    continues the thread with them.
    """
    caller = [m for m in caller_messages if _message_id(m) is not None]
    if not caller:
        return list(caller_messages)
    positions: dict[str, int] = {}
    for position, message in enumerate(thread_messages):
        mid = _message_id(message)
        if mid is not None:
            positions.setdefault(mid, position)
    start = positions.get(_message_id(caller[0]) or "")
    if not start:  # not stored, or the first stored message: nothing is missing in front
        return list(caller_messages)
    if any(positions.get(_message_id(m) or "", start) < start for m in caller):
        return list(caller_messages)  # it holds older messages after all: as sent
    older = [dict(m) for m in thread_messages[:start] if m.get("role") not in _CLIENT_ONLY_ROLES]
    return older + list(caller_messages)


def same_message(a: Message, b: Message) -> bool:
    """Whether two messages with one id are the same for a client (the fields it keeps)."""
    return _fingerprint(a) == _fingerprint(b)


def conflicting_ids(thread_messages: Sequence[Message], caller_messages: Iterable[Any]) -> list[str]:
    """Ids of the caller's messages that the thread holds with other content, in input order.

    (A gateway that builds the agent's history from the thread itself refuses these
    rather than guessing which of the two is meant.)
    """
    stored = {mid: m for m in thread_messages if (mid := _message_id(m)) is not None}
    out = []
    for message in caller_messages:
        mid = _message_id(message)
        if mid is not None and mid in stored and not same_message(stored[mid], message):
            out.append(mid)
    return out


def new_messages(known: Sequence[Message], caller_messages: Iterable[Any]) -> list[dict[str, Any]]:
    """The caller's messages ``known`` does not hold (by id), in input order, each id once."""
    seen = {mid for m in known if (mid := _message_id(m)) is not None}
    out = []
    for message in caller_messages:
        mid = _message_id(message)
        if mid is not None and mid not in seen:
            seen.add(mid)
            out.append(dict(message))
    return out


@dataclass(frozen=True)
class Parent:
    """The run a branch continues and the messages at its end ([] for a root branch)."""

    run_id: str | None
    messages: list[dict[str, Any]]


class ParentFinder:
    """The latest run whose outcome the caller's history continues, fed the log.

    Feed the thread's served events with their envelope runIds, in log order. A
    run's outcome is the client's messages at its terminal event; it is continued
    when every message of it is in the caller's input unchanged. One pass over the
    log, made only when a caller branches (edits are rare).
    """

    def __init__(self, caller_messages: Sequence[Any]) -> None:
        self._caller = {mid: _fingerprint(m) for m in caller_messages if (mid := _message_id(m)) is not None}
        self._reducer = Reducer(client_view=False)
        self.parent = Parent(None, [])

    def feed(self, run_id: str | None, event: Event) -> None:
        self._reducer.apply(event)
        if event.get("type") in ev.TERMINAL_TYPES and run_id is not None:
            messages = [m for m in self._reducer.messages if m.get("role") not in _CLIENT_ONLY_ROLES]
            caller = self._caller
            if all(caller.get(_message_id(m) or "") == _fingerprint(m) for m in messages):
                self.parent = Parent(run_id, messages)


class HistoryTooLarge(ValueError):
    """The caller's messages cannot be recorded in frames the official client accepts:
    one of them outgrows a frame and has nothing that can be cut over several (see
    :mod:`.compaction.split`)."""


@dataclass(frozen=True)
class RunPlan:
    """What the gateway records for a run, beside the agent's events."""

    annotation: dict[str, Any] | None  # the annotation of the run's first RUN_STARTED (None: nothing to add)
    caller_snapshots: list[Event]  # gateway events stored right after that RUN_STARTED
    branch: bool
    parent_run_id: str | None


def plan_run(
    run_input: Mapping[str, Any],
    thread_messages: Sequence[Message],
    thread_state: Any,
    parent: Parent | None,
    max_frame_bytes: int = MAX_FRAME_BYTES,
) -> RunPlan:
    """The record of a caller's run; ``parent`` is given exactly when it is a branch.

    Every event it records fits ``max_frame_bytes``: a MESSAGES_SNAPSHOT or an input
    too big for one frame travels with its largest contents cut out, appended by text
    events stored right after it. Raises :class:`HistoryTooLarge` when that cannot be.
    """
    thread_id, run_id = run_input["threadId"], run_input["runId"]
    caller_messages = [m for m in run_input.get("messages") or () if _message_id(m) is not None]
    branch = parent is not None
    base = parent.messages if parent is not None else thread_messages
    recorded: dict[str, Any] = {
        "threadId": thread_id,
        "runId": run_id,
        "messages": new_messages(base, caller_messages),
        "tools": [],
        "context": [],
    }
    if run_input.get("resume") is not None:
        recorded["resume"] = run_input["resume"]
    annotation: dict[str, Any] = {"input": recorded} if recorded["messages"] or "resume" in recorded else {}
    caller_snapshots: list[Event] = []
    if parent is not None:
        annotation.update(branch=True, input=recorded)
        if parent.run_id is not None:
            annotation["parentRunId"] = recorded["parentRunId"] = parent.run_id
    restated = parent is not None or "resume" in recorded
    if recorded["messages"]:
        slim = cut_contents(recorded["messages"], max_frame_bytes, together=True)
        if encoded_size(slim.messages) > max_frame_bytes:
            raise HistoryTooLarge("the run's new messages do not fit a frame of the official client")
        if slim.cut:
            # The input only adds messages a client lacks; the caller holds them whole
            # already, so appending the cut contents would double them there. A
            # snapshot (below) resets every client to the cut messages first.
            recorded["messages"] = slim.messages
            restated = True
    if restated:
        # A resumed run answers calls an earlier run made (its TOOL_CALL_RESULTs refer to
        # them): restating the history makes the run readable on its own, as run-scoped
        # readers (ag-ui-validate's reference checks) read it.
        slim = cut_contents([dict(m) for m in caller_messages], max_frame_bytes, together=True)
        if encoded_size(slim.messages) > max_frame_bytes:
            raise HistoryTooLarge("the caller's conversation does not fit a frame of the official client")
        caller_snapshots.append({"type": ev.MESSAGES_SNAPSHOT, "messages": slim.messages})
        caller_snapshots += slim.appends
    # An empty state is what a client without state sends every time (curl, a chat UI
    # that keeps none): it says nothing about the thread's state, so it is recorded
    # only on a branch. Any other state that differs from the thread's is the
    # caller's own (setState before the run), which the agent then runs on.
    state = run_input.get("state")
    if state is not None and (branch or (state != {} and state != thread_state)):
        caller_snapshots += state_events(state, max_frame_bytes)
    return RunPlan(annotation or None, caller_snapshots, branch, parent.run_id if parent is not None else None)


# -- the runs of a thread ------------------------------------------------------------------


@dataclass
class RunInfo:
    """One run of a thread's log: consecutive records with the same envelope runId."""

    run_id: str | None
    parent_run_id: str | None
    branch: bool
    first_seq: int
    last_seq: int
    status: str = "running"  # "finished" | "cancelled" (stopped) | "error" | "interrupted" | "running"
    # Figures, when the index is fed them: epoch ms of the run's first and last records
    # and of its second (the first event after its start), its records and their bytes.
    started_ms: int | None = None
    last_ms: int | None = None
    first_event_ms: int | None = None
    events: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        ended = self.status != "running"
        return {
            "runId": self.run_id,
            "parentRunId": self.parent_run_id,
            "branch": self.branch,
            "status": self.status,
            "firstSeq": self.first_seq,
            "lastSeq": self.last_seq,
            "startedAt": self.started_ms,
            "durationMs": _between(self.started_ms, self.last_ms) if ended else None,
            "firstEventMs": _between(self.started_ms, self.first_event_ms),
            "events": self.events,
            "bytes": self.bytes,
        }


def _between(start: int | None, end: int | None) -> int | None:
    return None if start is None or end is None else max(0, end - start)


class RunIndex:
    """The runs of a log, fed record by record (seq, envelope runId, event, annotation).

    A run's parent is its annotation's ``parentRunId`` when it is a branch (None for
    a branch from the empty thread), otherwise the run before it in the log: a run
    that continues the thread continues the latest run's outcome. Logs written
    before annotations existed (the gateway's own input run, then the agent's run
    with the same runId) index as one run per runId.
    """

    def __init__(self) -> None:
        self.runs: list[RunInfo] = []

    def feed(
        self,
        seq: int,
        run_id: str | None,
        event: Mapping[str, Any],
        annotation: Mapping[str, Any] | None,
        ts: int | None = None,
        size: int = 0,
    ) -> None:
        """One record; ``ts`` (epoch ms) and ``size`` (its stored bytes) feed the run's figures."""
        kind = event.get("type")
        current = self.runs[-1] if self.runs else None
        same = current is not None and current.run_id == run_id
        opens = kind == ev.RUN_STARTED and not (same and current is not None and current.status == "running")
        if opens and (not same or (annotation and annotation.get("branch"))):
            branch = bool(annotation and annotation.get("branch"))
            if branch:
                parent = annotation.get("parentRunId") if annotation else None
                parent = parent if isinstance(parent, str) else None
            else:
                parent = self._previous(run_id)
            self.runs.append(RunInfo(run_id, parent, branch, seq, seq))
            current = self.runs[-1]
        if current is None:
            self.runs.append(RunInfo(run_id, None, False, seq, seq))
            current = self.runs[-1]
        current.last_seq = seq
        current.events += 1
        current.bytes += size
        if ts is not None:
            if current.started_ms is None:
                current.started_ms = ts
            elif current.first_event_ms is None:
                current.first_event_ms = ts
            current.last_ms = ts
        if kind in ev.TERMINAL_TYPES:
            current.status = _status(event)
        elif kind == ev.RUN_STARTED:
            current.status = "running"

    def _previous(self, run_id: str | None) -> str | None:
        for info in reversed(self.runs):
            if info.run_id != run_id:
                return info.run_id
        return None

    def lineage(self, run_id: str) -> set[str | None] | None:
        """The run ids of the branch that ends at ``run_id`` (None if no such run)."""
        by_id = {info.run_id: info for info in self.runs}
        if run_id not in by_id:
            return None
        chain: set[str | None] = set()
        current: str | None = run_id
        while current is not None and current not in chain and current in by_id:
            chain.add(current)
            current = by_id[current].parent_run_id
        return chain


def _status(terminal: Mapping[str, Any]) -> str:
    if terminal.get("type") == ev.RUN_ERROR:
        return "cancelled" if terminal.get("code") == STOPPED_CODE else "error"
    outcome = terminal.get("outcome")
    if isinstance(outcome, Mapping) and outcome.get("type") == "interrupt":
        return "interrupted"
    if isinstance(outcome, Mapping) and outcome.get("type") == CANCELLED_OUTCOME:
        return "cancelled"  # a stop
    return "finished"
