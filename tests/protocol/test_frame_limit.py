"""No frame over the official client's limit, judged by the client reading the SSE bytes.

The client fails a stream whose frame outgrows its 10 MB buffer. A history, a
branch's MESSAGES_SNAPSHOT, one huge tool result, or an open run's merged deltas
that would outgrow it go out over several frames; the client reading the bytes
must end where it ends with the same events unsplit (read event by event, where no
frame limit applies).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from support.official_client import OfficialClient
from support.sse_client import SseClient, frame_sizes, sse_bytes, sse_client

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.compaction import SnapshotCompactor, split_event, split_sequenced
from agui_gateway.protocol.compaction.split import split_text
from agui_gateway.protocol.lineage import HistoryTooLarge, ParentFinder, continues, plan_run, served_event
from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT
from agui_testkit.generate import SHAPES, generate_log

Event = dict[str, Any]
MB = 1_000_000
TOO_BIG = "SSE buffer size exceeded"


@pytest.fixture(scope="module")
def sse() -> Iterator[SseClient]:
    with sse_client() as client:
        yield client


def _huge_results(runs: int, size: int, seed: int = 1) -> list[Event]:
    shape = SHAPES["huge_tool_result"].but(runs=runs, huge_tool_results=runs, huge_tool_result_bytes=size)
    return generate_log(shape, seed)


def _fresh_replay(events: list[Event]) -> tuple[SnapshotCompactor, bytes]:
    """What a fresh client reads: the finished block (its last frame with the folded
    seq), then the open run with its ids, as the gateway frames them."""
    compactor = SnapshotCompactor()
    compactor.feed_all(events)
    block = compactor.finished_block()
    framed = [(event, None) for event in block[:-1]] + [(event, compactor.folded_seq) for event in block[-1:]]
    return compactor, sse_bytes(framed + compactor.open_run_events())


def _assert_same(got: Any, want: Any) -> None:
    assert got.error is None, got.error
    assert want.error is None, want.error
    assert got.messages == want.messages
    assert got.state == want.state
    assert got.pending_interrupts == want.pending_interrupts


def _under_limit(data: bytes) -> None:
    assert max(frame_sizes(data)) < CLIENT_SSE_BUFFER_LIMIT


def test_a_fresh_replay_with_one_message_over_the_limit(sse: SseClient, official_client: OfficialClient) -> None:
    """A 12 MB tool result: its content goes out after it, in pieces, and lands whole."""
    raw = _huge_results(runs=2, size=12 * MB)
    assert max(len(orjson.dumps(e)) for e in raw) > CLIENT_SSE_BUFFER_LIMIT
    _, data = _fresh_replay(raw)
    _under_limit(data)
    reference = official_client.replay(raw)
    _assert_same(sse.read(data), reference)
    # The stored events themselves, live, split the same way: the id on the last part.
    framed = [part for seq, event in enumerate(raw, 1) for part in split_sequenced(event, seq, 8 * 2**20)]
    assert len(framed) > len(raw)
    assert [seq for _, seq in framed if seq is not None] == list(range(1, len(raw) + 1))
    live = sse_bytes(framed)
    _under_limit(live)
    _assert_same(sse.read(live), reference)
    # The client does refuse the unsplit stream: the limit is real.
    assert TOO_BIG in (sse.read(sse_bytes((event, None) for event in raw)).error or "")


def test_an_open_run_streaming_twelve_megabytes(sse: SseClient, official_client: OfficialClient) -> None:
    """An open run's deltas merge into one event per message: cut again past a frame."""
    raw: list[Event] = [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r1"},
        {"type": "TEXT_MESSAGE_START", "messageId": "m", "role": "assistant"},
    ]
    raw += [{"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": chr(97 + n % 26) * 100_000} for n in range(120)]
    compactor, data = _fresh_replay(raw)
    _under_limit(data)
    _assert_same(sse.read(data), official_client.replay(raw))
    ids = [seq for _, seq in compactor.open_run_events() if seq is not None]
    assert ids[-1] == len(raw)  # the last frame resumes after everything, as before


def _regenerate_last_turn(official_client: OfficialClient, raw: list[Event], budget: int) -> tuple[list[Event], Any]:
    """The caller's own POST stream of a regenerate of the thread's last answer."""
    held = official_client.replay(raw).messages
    last_user = max(i for i, m in enumerate(held) if m["role"] == "user")
    caller = held[: last_user + 1]
    thread = SnapshotCompactor()
    thread.feed_all(raw)
    messages, state = thread.snapshot()
    assert not continues(messages, caller)
    finder = ParentFinder(caller)
    run_id = None
    for event in raw:
        run_id = event["runId"] if event["type"] == ev.RUN_STARTED else run_id
        finder.feed(run_id, event)
    run_input = {"threadId": "t", "runId": "regen", "messages": caller, "state": state}
    plan = plan_run(run_input, messages, state, finder.parent, max_frame_bytes=budget)
    stream = [
        served_event({"type": ev.RUN_STARTED, "threadId": "t", "runId": "regen"}, plan.annotation),
        *plan.caller_snapshots,
        {"type": ev.TEXT_MESSAGE_START, "messageId": "again", "role": "assistant"},
        {"type": ev.TEXT_MESSAGE_CONTENT, "messageId": "again", "delta": "a second answer"},
        {"type": ev.TEXT_MESSAGE_END, "messageId": "again"},
        {"type": ev.RUN_FINISHED, "threadId": "t", "runId": "regen"},
    ]
    return stream, caller


def test_a_regenerate_on_a_twelve_megabyte_thread(sse: SseClient, official_client: OfficialClient) -> None:
    """The branch's MESSAGES_SNAPSHOT restates 12 MB: the caller's stream stays under the limit."""
    raw = _huge_results(runs=8, size=2 * MB)
    stream, caller = _regenerate_last_turn(official_client, raw, 8 * 2**20)
    unsplit, _ = _regenerate_last_turn(official_client, raw, 2**40)
    assert sum(len(orjson.dumps(m)) for m in caller) > 12 * MB
    data = sse_bytes((event, None) for event in stream)
    _under_limit(data)
    # The caller holds its messages when its run starts: so does the reference.
    holding = [
        {"type": ev.RUN_STARTED, "threadId": "t", "runId": "before"},
        {"type": ev.MESSAGES_SNAPSHOT, "messages": caller},
        {"type": ev.RUN_FINISHED, "threadId": "t", "runId": "before"},
    ]
    _assert_same(sse.read(data, mode="run", messages=caller), official_client.replay(holding + unsplit, mode="run"))
    assert TOO_BIG in (sse.read(sse_bytes((e, None) for e in unsplit), mode="run", messages=caller).error or "")
    # And a fresh replay of the thread with the run stored ends there too.
    _, fresh = _fresh_replay(raw + stream)
    _under_limit(fresh)
    _assert_same(sse.read(fresh), official_client.replay(raw + unsplit))


def test_small_budgets_split_everything_that_can_be(official_client: OfficialClient) -> None:
    """The same cuts at a 4 KiB budget, on a shape with every kind of message."""
    budget = 4096
    raw = generate_log("mixed", 21)
    compactor = SnapshotCompactor()
    compactor.feed_all(raw)
    replay = compactor.replay_events(budget)
    cut = [e for e in replay if e["type"] == ev.TEXT_MESSAGE_CONTENT and len(orjson.dumps(e)) <= budget + 100]
    assert cut, "nothing was cut: the test would prove nothing"
    _assert_same(official_client.replay(replay), official_client.replay(raw))
    window = compactor.history_window(3, budget)
    assert official_client.replay(window.events).error is None


def test_a_twelve_megabyte_state(sse: SseClient, official_client: OfficialClient) -> None:
    """A STATE_SNAPSHOT over the limit: an empty snapshot, then deltas adding it back."""
    state = {
        "files": {f"src/f{n}.py": f"x = {n}\n" * 10_000 for n in range(100)},
        "log": [{"line": n, "text": "y" * 50_000} for n in range(40)],
        "a/b~c": {"nested": [["z" * 3_000_000]]},
    }
    raw: list[Event] = [
        {"type": ev.RUN_STARTED, "threadId": "t", "runId": "r1"},
        {"type": ev.STATE_SNAPSHOT, "snapshot": state},
        {"type": ev.RUN_FINISHED, "threadId": "t", "runId": "r1"},
        {"type": ev.RUN_STARTED, "threadId": "t", "runId": "r2"},
        {"type": ev.STATE_DELTA, "delta": [{"op": "replace", "path": "/log/3/line", "value": -3}]},
    ]
    assert len(orjson.dumps(state)) > 12 * MB
    reference = official_client.replay(raw)
    _, data = _fresh_replay(raw)
    _under_limit(data)
    _assert_same(sse.read(data), reference)
    live = sse_bytes((part, None) for event in raw for part in split_event(event, 8 * 2**20))
    _under_limit(live)
    _assert_same(sse.read(live), reference)


def test_small_budgets_split_states(official_client: OfficialClient) -> None:
    raw = generate_log("state_heavy", 4)
    compactor = SnapshotCompactor()
    compactor.feed_all(raw)
    replay = compactor.replay_events(512)
    assert any(e["type"] == ev.STATE_DELTA for e in compactor.finished_block(512))
    _assert_same(official_client.replay(replay), official_client.replay(raw))
    live = [part for event in raw for part in split_event(event, 512)]
    _assert_same(official_client.replay(live), official_client.replay(raw))


def test_a_caller_message_that_cannot_be_cut_is_refused() -> None:
    parts = [{"type": "image", "source": {"type": "data", "value": "x" * 5000, "mimeType": "image/png"}}]
    caller = [{"id": "u1", "role": "user", "content": parts}]
    with pytest.raises(HistoryTooLarge):
        plan_run({"threadId": "t", "runId": "r", "messages": caller}, [], {}, None, max_frame_bytes=4096)


def test_split_text_cuts_by_encoded_size() -> None:
    text = 'ab"\\\n\u0001é😀' * 5000
    pieces = split_text(text, 1000)
    assert "".join(pieces) == text
    assert all(len(orjson.dumps(piece)) <= 1000 for piece in pieces)
    assert all(pieces)


@pytest.mark.slow
def test_a_forty_megabyte_fresh_replay(sse: SseClient, official_client: OfficialClient) -> None:
    raw = _huge_results(runs=10, size=4 * MB)
    compactor, data = _fresh_replay(raw)
    assert len(data) > 40 * MB
    _under_limit(data)
    _assert_same(sse.read(data), official_client.replay(raw))
    window = compactor.history_window(3)
    framed = [(e, None) for e in window.events[:-1]] + [(window.events[-1], compactor.folded_seq)]
    windowed = sse_bytes(framed)
    _under_limit(windowed)
    assert sse.read(windowed).error is None
