"""History windows, older pages and continuing from a window, judged by the official client.

A windowed replay plus the older pages must leave a client holding exactly what the
full replay leaves it holding (messages, state, pending interrupts); the pages joined
are the conversation's messages exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from support.official_client import OfficialClient

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import HISTORY_WINDOW_EVENT_NAME
from agui_gateway.protocol.compaction import SnapshotCompactor, UnknownCursor
from agui_gateway.protocol.lineage import Parent, ParentFinder, continues, plan_run, served_event, window_conversation
from agui_testkit import strategies
from agui_testkit.generate import generate_log

Event = dict[str, Any]


def _compactor(events: list[Event]) -> SnapshotCompactor:
    compactor = SnapshotCompactor()
    compactor.feed_all(events)
    return compactor


def _older_pages(compactor: SnapshotCompactor, before: str | None, limit: int) -> list[dict[str, Any]]:
    """Every page before the cursor, newest first, joined oldest first."""
    older: list[dict[str, Any]] = []
    pages = 0
    while before is not None:
        page = compactor.messages_before(before, limit)
        assert page.messages, "a page with a cursor before it is never empty"
        older = page.messages + older
        before = page.before
        pages += 1
        assert pages < 10_000
    return older


def _holding(client: OfficialClient, messages: list[dict[str, Any]]) -> Any:
    """What the client holds once given ``messages`` (older pages prepended to its own)."""
    return client.replay(
        [
            {"type": "RUN_STARTED", "threadId": "t", "runId": "pages"},
            {"type": "MESSAGES_SNAPSHOT", "messages": messages},
            {"type": "RUN_FINISHED", "threadId": "t", "runId": "pages"},
        ]
    )


def _check_window(client: OfficialClient, compactor: SnapshotCompactor, turns: int, limit: int = 5) -> Any:
    full = client.replay(compactor.replay_events())
    assert full.error is None
    window = compactor.history_window(turns)
    replay = window.events + [event for event, _ in compactor.open_run_events()]
    windowed = client.replay(replay)
    assert windowed.error is None, windowed.error
    assert windowed.state == full.state
    assert windowed.pending_interrupts == full.pending_interrupts
    notes = [e for e in replay if e["type"] == ev.CUSTOM and e.get("name") == HISTORY_WINDOW_EVENT_NAME]
    if window.events:
        assert replay[0]["type"] == ev.RUN_STARTED and replay[1] is notes[0]
        assert notes == [replay[1]]
        assert notes[0]["value"] == {"turns": turns, "olderMessages": window.older, "before": window.before}
    older = _older_pages(compactor, window.before, limit)
    assert len(older) == window.older
    joined = _holding(client, older + windowed.messages)
    assert joined.error is None
    assert joined.messages == full.messages
    # The folded conversation, cut in two, is the conversation exactly.
    assert older + compactor.history_window(turns).events[0:0] + list(
        compactor.history_index().messages[window.older :]
    ) == list(compactor.history_index().messages)
    return window


@pytest.mark.parametrize(
    "shape",
    ["many_runs", "realistic_small", "messages_snapshot_mid", "error_runs", "reasoning", "activity", "mixed"],
)
@pytest.mark.parametrize("turns", [1, 3, 1000])
def test_window_and_older_pages_replay_like_the_full_thread(
    official_client: OfficialClient, shape: str, turns: int
) -> None:
    compactor = _compactor(generate_log(shape, 3))
    window = _check_window(official_client, compactor, turns)
    if turns == 1000:
        assert window.older == 0 and window.before is None


def _turn(run: str, number: int, *, parent: str | None = None, extra: list[Event] | None = None) -> list[Event]:
    """A run whose caller adds user message u<number> and whose agent answers a<number>."""
    started: Event = {
        "type": "RUN_STARTED",
        "threadId": "t",
        "runId": run,
        "input": {"threadId": "t", "runId": run, "messages": [{"id": f"u{number}", "role": "user", "content": "q"}]},
    }
    if parent is not None:
        started["parentRunId"] = parent
    return [
        started,
        *(extra or []),
        {"type": "TEXT_MESSAGE_START", "messageId": f"a{run}", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"a{run}", "delta": f"answer of {run}"},
        {"type": "TEXT_MESSAGE_END", "messageId": f"a{run}"},
        {"type": "RUN_FINISHED", "threadId": "t", "runId": run},
    ]


def _parent(log: list[Event], caller: list[dict[str, Any]]) -> Parent:
    """The branch parent, as the server finds it: the log fed with each event's run id."""
    finder = ParentFinder(caller)
    run_id = None
    for event in log:
        run_id = event["runId"] if event["type"] == "RUN_STARTED" else run_id
        finder.feed(run_id, event)
    return finder.parent


def _ids(messages: Any) -> list[str]:
    return [m["id"] for m in messages]


def test_a_window_holds_the_messages_of_the_last_runs(official_client: OfficialClient) -> None:
    log = [event for n in range(1, 7) for event in _turn(f"r{n}", n)]
    compactor = _compactor(log)
    window = compactor.history_window(2)
    client = official_client.replay(window.events)
    assert _ids(client.messages) == ["u5", "ar5", "u6", "ar6"]
    assert (window.older, window.before) == (8, "u5")
    page = compactor.messages_before("u5", 3)
    assert (_ids(page.messages), page.before) == (["ar3", "u4", "ar4"], "ar3")
    last = compactor.messages_before("ar1", 3)
    assert (_ids(last.messages), last.before) == (["u1"], None)
    _check_window(official_client, compactor, 2, limit=3)


def test_a_regenerated_turn_owns_its_restated_user_message(official_client: OfficialClient) -> None:
    """r3 regenerates r2's answer: the branch's parent is r1, its user message u2 is r3's."""
    log = _turn("r1", 1) + _turn("r2", 2)
    thread = official_client.replay(log).messages
    caller = {"threadId": "t", "runId": "r3", "messages": thread[:3], "state": {}}  # u1, a1, u2
    assert not continues(thread, caller["messages"])
    plan = plan_run(caller, thread, {}, _parent(log, caller["messages"]))
    assert plan.parent_run_id == "r1"
    started = served_event({"type": "RUN_STARTED", "threadId": "t", "runId": "r3"}, plan.annotation)
    run = [started, *plan.caller_snapshots, *_turn("r3", 9)[1:]]
    compactor = _compactor(log + run)
    assert _ids(official_client.replay(compactor.history_window(1).events).messages) == ["u2", "ar3"]
    assert _ids(official_client.replay(compactor.history_window(2).events).messages) == ["u1", "ar1", "u2", "ar3"]
    _check_window(official_client, compactor, 1, limit=1)


def test_the_window_reaches_back_to_what_the_open_run_names(official_client: OfficialClient) -> None:
    """An open run appending to an old message: the window holds that message."""
    log = [event for n in range(1, 5) for event in _turn(f"r{n}", n)]
    open_run = [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r5"},
        {"type": "TEXT_MESSAGE_START", "messageId": "ar2", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "ar2", "delta": " (amended)"},
    ]
    compactor = _compactor(log + open_run)
    window = _check_window(official_client, compactor, 1)
    assert window.before == "ar2"
    # An open run that only adds messages of its own leaves the window where it was.
    quiet = _compactor([*log, open_run[0], {**open_run[1], "messageId": "new"}, {**open_run[2], "messageId": "new"}])
    assert _check_window(official_client, quiet, 1).before == "u4"


def test_windows_survive_a_checkpoint(official_client: OfficialClient) -> None:
    raw = generate_log("many_runs", 5)
    one_pass = _compactor(raw)
    restored = SnapshotCompactor.loads(one_pass.dumps())
    for turns in (1, 4, 9):
        assert restored.history_window(turns) == one_pass.history_window(turns)
    _check_window(official_client, restored, 4)


def test_an_unknown_cursor_is_an_error() -> None:
    compactor = _compactor(_turn("r1", 1) + _turn("r2", 2))
    with pytest.raises(UnknownCursor):
        compactor.messages_before("nope", 10)
    with pytest.raises(ValueError, match="limit must be at least 1"):
        compactor.messages_before("u2", 0)
    with pytest.raises(ValueError, match="turns must be at least 1"):
        compactor.history_window(0)


def test_a_cursor_never_names_a_duplicated_id(official_client: OfficialClient) -> None:
    """Two messages share an id: windows and pages start before both, and still join exactly."""
    log = [event for n in range(1, 5) for event in _turn(f"r{n}", n)]
    log[19:19] = [{"type": "TOOL_CALL_RESULT", "messageId": "u3", "toolCallId": "x", "content": "dup"}]  # in r4
    compactor = _compactor(log)
    assert _ids(compactor.history_index().messages).count("u3") == 2
    for turns in (1, 2, 3):
        window = _check_window(official_client, compactor, turns, limit=1)
        assert window.before != "u3"


# -- continuing from a window ----------------------------------------------------------


def _thread(official_client: OfficialClient, runs: int = 5) -> tuple[list[Event], list[dict[str, Any]]]:
    log = [event for n in range(1, runs + 1) for event in _turn(f"r{n}", n)]
    return log, official_client.replay(log).messages


def test_a_window_caller_continues_the_thread(official_client: OfficialClient) -> None:
    log, thread = _thread(official_client)
    compactor = _compactor(log)
    window = compactor.history_window(2)
    held = official_client.replay(window.events).messages
    new = {"id": "u6", "role": "user", "content": "next"}
    for suffix in (held, held[1:]):  # at a run start, or wherever older pages left it
        conversation = window_conversation(thread, [*suffix, new])
        assert conversation == [*thread, new]
        assert continues(thread, conversation)
        plan = plan_run({"threadId": "t", "runId": "r6", "messages": conversation}, thread, {}, None)
        assert not plan.branch and plan.caller_snapshots == []
        assert plan.annotation is not None and plan.annotation["input"]["messages"] == [new]


def test_an_edit_inside_the_window_branches_and_keeps_the_older_messages(official_client: OfficialClient) -> None:
    log, thread = _thread(official_client)
    held = official_client.replay(_compactor(log).history_window(2).events).messages  # u4 a4 u5 a5
    edited = [*held[:2], {**held[2], "content": "q, edited"}]  # regenerate from an edited u5
    conversation = window_conversation(thread, edited)
    assert conversation[: len(thread) - 4] == thread[:-4]
    assert not continues(thread, conversation)
    parent = _parent(log, conversation)
    assert parent.run_id == "r4"
    plan = plan_run({"threadId": "t", "runId": "r6", "messages": conversation}, thread, {}, parent)
    run = [
        served_event({"type": "RUN_STARTED", "threadId": "t", "runId": "r6"}, plan.annotation),
        *plan.caller_snapshots,
    ]
    run += _turn("r6", 6)[1:]
    after = official_client.replay(log + run)
    assert after.error is None
    assert _ids(after.messages) == [*_ids(thread[:-1]), "ar6"]
    assert after.messages[-2]["content"] == "q, edited"


def test_what_window_conversation_leaves_as_sent() -> None:
    thread = [{"id": f"m{n}", "role": "user", "content": str(n)} for n in range(6)]
    new = {"id": "x", "role": "user", "content": "x"}
    assert window_conversation(thread, [new]) == [new]  # shares nothing: the old rule decides
    assert window_conversation(thread, thread) == thread  # from the start: nothing to restore
    assert window_conversation(thread, [thread[3], thread[1]]) == [thread[3], thread[1]]  # holds an older one
    activity = {"id": "act", "role": "activity", "activityType": "a", "content": {}}
    with_activity = [thread[0], activity, *thread[1:]]
    assert window_conversation(with_activity, thread[3:]) == thread  # the client keeps no activity


def test_the_window_event_follows_the_run_started(official_client: OfficialClient) -> None:
    """The official client refuses a stream that opens with anything but RUN_STARTED."""
    window = _compactor(_turn("r1", 1) + _turn("r2", 2)).history_window(1)
    assert official_client.verify(window.events).error is None
    first = [window.events[1], window.events[0], *window.events[2:]]
    assert "First event must be 'RUN_STARTED'" in (official_client.verify(first).error or "")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=strategies.event_streams())
def test_random_streams_window_like_the_full_replay(official_client: OfficialClient, stream: list[Event]) -> None:
    if official_client.replay(stream).error is not None:
        return
    compactor = _compactor(stream)
    for turns in (1, 2):
        _check_window(official_client, compactor, turns, limit=2)


def test_a_first_format_log_keeps_each_turn_whole(official_client: OfficialClient) -> None:
    """The gateway's input run and the agent's run, one runId: one run for the window."""
    path = Path(__file__).parents[1] / "fixtures" / "format-v1" / "legacy.jsonl"
    events = [orjson.loads(line)["event"] for line in path.read_bytes().splitlines() if line.strip()]
    compactor = _compactor(events)
    messages = compactor.history_index().messages
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    assert len(users) >= 2
    window = _check_window(official_client, compactor, 1)
    assert window.older == users[-1]  # the last turn starts with its user message
