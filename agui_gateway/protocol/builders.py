"""The events the gateway writes itself: RUN_STARTED, RUN_FINISHED (a stop's, cancelled), RUN_ERROR, and the
CUSTOM record that stands in for an agent event that could not be stored.

Plain dicts in the official models' wire form (``model_dump(by_alias=True,
mode="json")``, which leaves out unset optional fields); the test suite checks them
against ``ag_ui.core``. Built by hand because importing the pydantic models costs a
third of a second, which the compaction path must not pay.
"""

from __future__ import annotations

from typing import Any

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.types import Event


def run_started_event(thread_id: str, run_id: str, input: Any = None) -> Event:
    """A RUN_STARTED; ``input`` (a RunAgentInput dict, e.g. carrying the run's new
    user messages) is attached as given, and left out when ``None``."""
    event: Event = {"type": ev.RUN_STARTED, "threadId": thread_id, "runId": run_id}
    if input is not None:
        event["input"] = input
    return event


def run_finished_event(thread_id: str, run_id: str) -> Event:
    """A RUN_FINISHED without result or outcome."""
    return {"type": ev.RUN_FINISHED, "threadId": thread_id, "runId": run_id}


# AG-UI 1.0's outcome of a run "stopped before it completed, by whoever was running it,
# and did not fail": what the gateway's stop records.
CANCELLED_OUTCOME = "cancelled"
# The code of a stop's RUN_ERROR in logs written before (and of what else a stop ends
# with an error code: a subagent it cut short).
STOPPED_CODE = "stopped"


def run_cancelled_event(thread_id: str, run_id: str) -> Event:
    """The RUN_FINISHED that ends a stopped run: ``outcome: {"type": "cancelled"}``."""
    return {"type": ev.RUN_FINISHED, "threadId": thread_id, "runId": run_id, "outcome": {"type": CANCELLED_OUTCOME}}


def run_error_event(message: str, code: str | None = None) -> Event:
    """A RUN_ERROR; ``code`` is left out when ``None``."""
    event: Event = {"type": ev.RUN_ERROR, "message": message}
    if code is not None:
        event["code"] = code
    return event


# The CUSTOM event name of the record stored in place of an agent event that cannot be stored.
REJECTED_EVENT_NAME = "agui_gateway.event_rejected"


def rejected_event(reason: str, event_type: Any, size: int | None = None) -> Event:
    """The record stored in place of an agent event the gateway cannot store: a CUSTOM
    event, which clients pass by without a change of messages or state, so the run goes on.
    ``value`` says why, the dropped event's type and (when known) its size in bytes."""
    value: dict[str, Any] = {"reason": reason, "eventType": event_type if isinstance(event_type, str) else None}
    if size is not None:
        value["bytes"] = size
    return {"type": ev.CUSTOM, "name": REJECTED_EVENT_NAME, "value": value}


# The CUSTOM event name of a windowed replay's first event after its RUN_STARTED.
HISTORY_WINDOW_EVENT_NAME = "agui_gateway.history_window"


def history_window_event(turns: int, older: int, before: str | None) -> Event:
    """What a windowed replay says about itself: the ``turns`` asked for, how many
    messages of the conversation are older than the window, and the cursor of the page
    of them (``GET /threads/{t}/messages?before=...``; ``None`` when none is older)."""
    return {
        "type": ev.CUSTOM,
        "name": HISTORY_WINDOW_EVENT_NAME,
        "value": {"turns": turns, "olderMessages": older, "before": before},
    }
