"""The run events the gateway writes itself: RUN_STARTED, RUN_FINISHED, RUN_ERROR.

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


def run_error_event(message: str, code: str | None = None) -> Event:
    """A RUN_ERROR; ``code`` is left out when ``None``."""
    event: Event = {"type": ev.RUN_ERROR, "message": message}
    if code is not None:
        event["code"] = code
    return event
