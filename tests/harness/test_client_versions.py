"""The harness carries two official clients: 1.0.0 (the reference) and 0.0.59 (what
@copilotkit/runtime 1.75.0 and CopilotKit's front end bundle). Each replays with its own
package, and where they differ on a stream the gateway may serve, the difference is the
one docs/official-clients.md describes."""

from __future__ import annotations

from typing import Any

import pytest
from support.official_client import OfficialClient

from agui_gateway import compact_to_snapshots

RUN = {"threadId": "t", "runId": "r1"}


def _stream(*middle: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "RUN_STARTED", **RUN}, *middle, {"type": "RUN_FINISHED", **RUN}]


def test_each_replay_server_runs_its_own_client(
    official_client: OfficialClient, official_client_0059: OfficialClient
) -> None:
    events = _stream(
        {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "hi"},
        {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
    )
    reference, older = official_client.replay(events), official_client_0059.replay(events)
    assert (reference.client, older.client) == ("1.0.0", "0.0.59")
    assert reference.error is None and older.error is None
    assert reference.messages == older.messages == [{"id": "m1", "role": "assistant", "content": "hi"}]


@pytest.mark.parametrize("falsy", [None, False, 0, ""])
def test_a_falsy_state_is_the_state_in_1_0_and_ignored_in_0_0_59(
    official_client: OfficialClient, official_client_0059: OfficialClient, falsy: Any
) -> None:
    for last in (
        {"type": "STATE_SNAPSHOT", "snapshot": falsy},
        {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "", "value": falsy}]},
    ):
        raw = _stream({"type": "STATE_SNAPSHOT", "snapshot": {"a": 1}}, last)
        assert official_client.replay(raw).state == falsy
        assert official_client_0059.replay(raw).state == {"a": 1}, last
        # The gateway follows 1.0.0: its replay form holds the state as it is. Under 1.0.0
        # that ends where the raw log does; 0.0.59 ignores it and keeps its initial {}
        # (the case the sweep of tests/protocol/test_equivalence.py leaves out under 0.0.59).
        replay = compact_to_snapshots(raw)
        assert replay[1] == {"type": "STATE_SNAPSHOT", "snapshot": falsy}
        assert official_client.replay(replay).state == falsy
        assert official_client_0059.replay(replay).state == {}
