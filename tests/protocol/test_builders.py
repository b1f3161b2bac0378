"""The gateway's own run events are what the official Python models dump."""

from __future__ import annotations

from ag_ui.core import RunErrorEvent, RunFinishedCancelledOutcome, RunFinishedEvent, RunStartedEvent

from agui_gateway.protocol.builders import run_cancelled_event, run_error_event, run_finished_event, run_started_event


def _dump(model: RunErrorEvent | RunFinishedEvent | RunStartedEvent) -> dict[str, object]:
    return model.model_dump(by_alias=True, mode="json")


def test_run_started_matches_the_official_model() -> None:
    assert run_started_event("t", "r") == _dump(RunStartedEvent(thread_id="t", run_id="r"))
    run_input = {"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}]}
    with_input = _dump(RunStartedEvent(thread_id="t", run_id="r")) | {"input": run_input}
    assert run_started_event("t", "r", run_input) == with_input


def test_run_finished_matches_the_official_model() -> None:
    assert run_finished_event("t", "r") == _dump(RunFinishedEvent(thread_id="t", run_id="r"))


def test_a_stops_run_finished_matches_the_official_model_with_the_cancelled_outcome() -> None:
    official = RunFinishedEvent(thread_id="t", run_id="r", outcome=RunFinishedCancelledOutcome())
    assert run_cancelled_event("t", "r") == _dump(official)


def test_run_error_matches_the_official_model() -> None:
    assert run_error_event("boom") == _dump(RunErrorEvent(message="boom"))
    assert run_error_event("boom", "upstream_error") == _dump(RunErrorEvent(message="boom", code="upstream_error"))
