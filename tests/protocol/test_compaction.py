"""Properties of the compaction core beyond end-state equivalence (see test_equivalence.py)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings

from agui_gateway import Reducer, SnapshotCompactor
from agui_gateway.protocol.compaction import compact_sequenced
from agui_testkit import strategies
from agui_testkit.generate import generate_log, iter_log
from agui_testkit.shapes import realistic_coding_agent


def _end_state(events: list[dict[str, Any]]) -> tuple[Any, Any]:
    reducer = Reducer(client_view=False).apply_all(events)
    return reducer.messages, reducer.state


def _check_ids(raw: list[dict[str, Any]]) -> None:
    frames = compact_sequenced(enumerate(raw, 1))
    ids = [frame_id for _, frame_id in frames]
    assert ids[-1] == len(raw), "the last frame must carry the last seq"
    assert [i for i in ids if i is not None] == sorted({i for i in ids if i is not None})
    for index, frame_id in enumerate(ids):
        if frame_id is None:
            continue
        prefix = [event for event, _ in frames[: index + 1]]
        # Holding frames up to here is holding exactly the events up to frame_id ...
        assert _end_state(prefix) == _end_state(raw[:frame_id])
        # ... so resuming after frame_id with the raw events continues exactly.
        assert _end_state(prefix + raw[frame_id:]) == _end_state(raw)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=strategies.event_streams())
def test_sequenced_ids_are_exact_resume_points(stream: list[dict[str, Any]]) -> None:
    _check_ids(stream)


def test_sequenced_ids_on_interleaved_parallel_tools() -> None:
    _check_ids(generate_log("parallel_tools", 3))


def test_merged_deltas_hide_ids_inside_the_stretch() -> None:
    raw = [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {"type": "TEXT_MESSAGE_START", "messageId": "a"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "x"},
        {"type": "STATE_SNAPSHOT", "snapshot": {"n": 1}},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "a", "delta": "y"},
        {"type": "TEXT_MESSAGE_END", "messageId": "a"},
    ]
    frames = compact_sequenced(enumerate(raw, 1))
    assert [e["type"] for e, _ in frames] == [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "STATE_SNAPSHOT",
        "TEXT_MESSAGE_END",
    ]
    assert frames[2][0]["delta"] == "xy"
    # The merged CONTENT covers seqs 3 and 5, so it carries no id (4 is missing);
    # once the STATE_SNAPSHOT (4) is sent, everything up to 5 is held, nothing after.
    assert [i for _, i in frames] == [1, 2, None, 5, 6]


def _retained_after_feeding(feed: Any, seed: int) -> int:
    """Bytes still allocated after feeding a 36,000-event realistic log, event by event."""
    tracemalloc.start()
    try:
        for event in iter_log(realistic_coding_agent(36_000), seed):
            feed(event)
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_the_reducer_keeps_no_events() -> None:
    """Memory follows the resulting messages and state, not the number of events."""
    reducer = Reducer(client_view=False)
    retained = _retained_after_feeding(reducer.apply, 3)
    result = len(orjson.dumps([reducer.messages, reducer.state]))
    # 36,000 events as dicts would take tens of MB; the result is ~0.6 MB of JSON.
    assert retained < 4 * result + (2 << 20), (retained, result)


def test_the_snapshot_compactor_keeps_only_the_open_run_compacted() -> None:
    compactor = SnapshotCompactor()
    retained = _retained_after_feeding(compactor.feed, 4)
    replay = sum(len(orjson.dumps(e)) for e in compactor.replay_events())
    assert retained < 4 * replay + (2 << 20), (retained, replay)


def test_checkpoint_round_trip_keeps_everything() -> None:
    raw = generate_log("mixed", 9)
    compactor = SnapshotCompactor()
    for event in raw:
        compactor.feed(event)
        if event["type"] in ("RUN_FINISHED", "RUN_ERROR"):
            restored = SnapshotCompactor.loads(compactor.dumps())
            assert restored.finished_block() == compactor.finished_block()
            assert restored.folded_seq == compactor.folded_seq
