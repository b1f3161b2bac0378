"""The core promise, checked against the official client on every generated shape.

For each log: the official client replaying the raw log, our reducer, the
official client replaying ``compact_events`` output and replaying
``compact_to_snapshots`` output must all end in the same messages, state and
pending interrupts; both compacted forms must be verify-clean.

Over the generated corpus the raw replay is also made with the client's own native
``structuredClone`` (side by side, on the other core): the harness's faster clone must
change nothing in it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from support.corpus import GENERATED_CORPUS
from support.official_client import (
    REFERENCE_CLIENT,
    js_values,
    official_client_of_each_version,  # noqa: F401 (the fixture official_client)
)

from agui_gateway import Reducer, SnapshotCompactor, compact_events, compact_to_snapshots
from agui_testkit import strategies
from agui_testkit.generate import generate_log


def _size(events: list[dict[str, Any]]) -> int:
    return sum(len(orjson.dumps(e)) + 1 for e in events)


def _assert_same(label: str, got: Any, want: Any) -> None:
    assert got.error is None, f"{label}: the official client rejected it: {got.error}"
    assert got.messages == want.messages, f"{label}: messages differ"
    assert got.state == want.state, f"{label}: state differs"
    assert got.pending_interrupts == want.pending_interrupts, f"{label}: interrupts differ"


def _js_falsy(value: Any) -> bool:
    return value is None or value is False or value == "" or (type(value) in (int, float) and value == 0)


def _may_set_a_falsy_state(raw: list[dict[str, Any]]) -> bool:
    """A STATE_SNAPSHOT of a falsy value, or a STATE_DELTA that writes the whole state."""
    for event in raw:
        if event.get("type") == "STATE_SNAPSHOT" and _js_falsy(event.get("snapshot")):
            return True
        delta = event.get("delta") if event.get("type") == "STATE_DELTA" else None
        if isinstance(delta, list) and any(isinstance(op, dict) and op.get("path") == "" for op in delta):
            return True
    return False


def check_equivalence(client: Any, raw: list[dict[str, Any]], native_clone: Any = None) -> list[dict[str, Any]]:
    """Check every form against the client; return the snapshot form.

    ``native_clone``: a second client keeping the native ``structuredClone``; its replay of
    the raw log runs beside the other checks and must equal the harness's, field for field.
    """
    if client.client != REFERENCE_CLIENT and _may_set_a_falsy_state(raw):
        # 0.0.59 ignores a state that is falsy in JavaScript, which the replay forms keep as
        # 1.0.0 reads it: the known difference of docs/official-clients.md
        # (tests/harness/test_client_versions.py).
        return compact_to_snapshots(raw)
    with ThreadPoolExecutor(1) as pool:
        native = None if native_clone is None else pool.submit(native_clone.replay, raw)
        snapshots, reference = _check_forms(client, raw)
        if native is not None:
            assert native.result() == reference, "the harness's fast clone changed the raw replay"
    return snapshots


def _check_forms(client: Any, raw: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    reference = client.replay(raw)
    assert reference.error is None, f"generated log is not valid: {reference.error}"

    if client.client == REFERENCE_CLIENT:  # the Reducer ports 1.0.0; 0.0.59 judges the forms alone
        reducer = Reducer().apply_all(raw)
        reducer.finish()
        assert js_values(reducer.messages) == js_values(reference.messages), "reducer messages differ"
        assert js_values(reducer.state) == js_values(reference.state), "reducer state differs"
        assert js_values(reducer.pending_interrupts) == js_values(reference.pending_interrupts), (
            "reducer interrupts differ"
        )

    deltas = compact_events(raw)
    _assert_same("compact_events", client.replay(deltas), reference)
    assert len(deltas) <= len(raw)
    assert _size(deltas) <= _size(raw), "the delta form is larger than the raw log"

    snapshots = compact_to_snapshots(raw)
    _assert_same("compact_to_snapshots", client.replay(snapshots), reference)
    return snapshots, reference


@pytest.mark.parametrize(("shape", "seed"), GENERATED_CORPUS)
def test_generated_shapes_are_equivalent(official_client: Any, native_clone_client: Any, shape: str, seed: int) -> None:
    raw = generate_log(shape, seed)
    # The harness's fast clone is checked once, under the reference client.
    native = native_clone_client if official_client.client == REFERENCE_CLIENT else None
    snapshots = check_equivalence(official_client, raw, native)
    assert _size(snapshots) <= _size(raw), "the snapshot form is larger than the raw log"


@pytest.mark.parametrize("shape", ["mixed", "error_runs", "open_last_run", "state_heavy"])
def test_checkpointed_compaction_equals_one_pass(official_client: Any, shape: str) -> None:
    """Folding run by run through dumps/loads (what the gateway does) gives the same replay."""
    raw = generate_log(shape, 7)
    compactor = SnapshotCompactor()
    for event in raw:
        compactor.feed(event)
        if event["type"] in ("RUN_FINISHED", "RUN_ERROR"):
            compactor = SnapshotCompactor.loads(compactor.dumps())
    incremental = compactor.replay_events()
    assert incremental == compact_to_snapshots(raw)
    _assert_same("checkpointed", official_client.replay(incremental), official_client.replay(raw))


def _interrupted_run(thread: str, run_id: str) -> list[dict[str, Any]]:
    """A run that calls a tool, streams some text, and ends asking the user for approval."""
    interrupt = {"id": f"{run_id}-approve", "reason": "tool_approval", "message": "Run the migration?"}
    return [
        {"type": "RUN_STARTED", "threadId": thread, "runId": run_id},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{run_id}-m", "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{run_id}-m", "delta": d} for d in ("I will ", "migrate.")),
        {"type": "TEXT_MESSAGE_END", "messageId": f"{run_id}-m"},
        {
            "type": "RUN_FINISHED",
            "threadId": thread,
            "runId": run_id,
            "outcome": {"type": "interrupt", "interrupts": [interrupt]},
        },
    ]


@pytest.mark.parametrize("then", ["nothing", "a failed run", "an open run"])
def test_a_pending_interrupt_survives_every_compaction(official_client: Any, then: str) -> None:
    """A thread whose last finished run ends on an interrupt: the client holds it pending
    (through a later RUN_ERROR too), and so must every compacted form and checkpoint."""
    raw = generate_log("parallel_tools", 2)
    thread = raw[0]["threadId"]
    raw += _interrupted_run(thread, "ask")
    if then == "a failed run":
        raw += [{"type": "RUN_STARTED", "threadId": thread, "runId": "late"}, {"type": "RUN_ERROR", "message": "gone"}]
    elif then == "an open run":
        raw += [
            {"type": "RUN_STARTED", "threadId": thread, "runId": "answer"},
            {"type": "TEXT_MESSAGE_START", "messageId": "answer-m", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "answer-m", "delta": "Migrating"},
        ]
    reference = official_client.replay(raw)
    asked = [{"id": "ask-approve", "reason": "tool_approval", "message": "Run the migration?"}]
    assert reference.pending_interrupts == asked, "the client holds the interrupt: the check is not vacuous"
    check_equivalence(official_client, raw)
    compactor = SnapshotCompactor()
    for event in raw:
        compactor.feed(event)
        if event["type"] in ("RUN_FINISHED", "RUN_ERROR"):
            compactor = SnapshotCompactor.loads(compactor.dumps())
    _assert_same("checkpointed", official_client.replay(compactor.replay_events()), reference)


def test_every_prefix_of_a_run_replays_like_the_raw_prefix(official_client: Any) -> None:
    """A client joining mid-run gets the snapshot plus the open run; it must match the raw prefix."""
    raw = generate_log("mixed", 11)
    starts = [i for i, e in enumerate(raw) if e["type"] == "RUN_STARTED"]
    last_run = raw[starts[-1] :]
    for cut in range(1, len(last_run), max(1, len(last_run) // 15)):
        prefix = raw[: starts[-1] + cut]
        _assert_same(
            f"prefix {len(prefix)}",
            official_client.replay(compact_to_snapshots(prefix)),
            official_client.replay(prefix),
        )


def test_snapshot_output_is_close_to_the_floor() -> None:
    """A finished log's replay form is at most 1.2x the JSON of its final messages and state."""
    raw = generate_log("realistic_small", 5)
    compactor = SnapshotCompactor()
    for event in raw:
        compactor.feed(event)
    assert not compactor.run_open
    messages, state = compactor.snapshot()
    floor = len(orjson.dumps({"messages": messages, "state": state}))
    assert _size(compactor.replay_events()) <= 1.2 * floor


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=strategies.event_streams())
def test_random_streams_are_equivalent(official_client: Any, stream: list[dict[str, Any]]) -> None:
    check_equivalence(official_client, stream)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=strategies.raw_streams())
def test_random_raw_streams_reducer_matches_client(official_client: Any, stream: list[dict[str, Any]]) -> None:
    check_equivalence(official_client, stream)


def test_history_too_big_for_one_frame_is_split_and_equivalent(official_client: Any) -> None:
    """The client refuses SSE frames over 10 MB: big histories go out in several frames."""
    raw = generate_log("mixed", 21)
    compactor = SnapshotCompactor()
    for event in raw:
        compactor.feed(event)
    budget = 4096  # forces many frames
    block = compactor.finished_block(max_frame_bytes=budget)
    assert not any(e["type"] == "MESSAGES_SNAPSHOT" for e in block)
    carriers = [e["input"]["messages"] for e in block if e["type"] == "RUN_STARTED"]
    assert len(carriers) > 2
    # A frame holds one message, or several whose JSON stays under the budget.
    assert all(len(batch) == 1 or len(orjson.dumps(batch)) <= budget for batch in carriers)
    _assert_same(
        "split history",
        official_client.replay(compactor.replay_events(max_frame_bytes=budget)),
        official_client.replay(raw),
    )


@pytest.mark.slow
def test_history_over_ten_megabytes_replays_through_the_official_client(official_client: Any) -> None:
    """Twelve 1 MB assistant messages streamed in 100 KB deltas: raw and replay agree."""
    raw: list[dict[str, Any]] = [{"type": "RUN_STARTED", "threadId": "big", "runId": "r1"}]
    for n in range(12):
        raw.append({"type": "TEXT_MESSAGE_START", "messageId": f"m{n}", "role": "assistant"})
        raw += [
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"m{n}", "delta": chr(65 + n) * 100_000} for _ in range(10)
        ]
        raw.append({"type": "TEXT_MESSAGE_END", "messageId": f"m{n}"})
    raw.append({"type": "RUN_FINISHED", "threadId": "big", "runId": "r1"})
    replay = compact_to_snapshots(raw)
    assert max(len(orjson.dumps(e)) for e in replay) < 10 * 2**20
    _assert_same("over 10 MB", official_client.replay(replay), official_client.replay(raw))
