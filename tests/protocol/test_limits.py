"""Depth limits, and fuzzing the reducer with states built to nest too deep.

A state the reducer holds must always encode again (``orjson`` refuses JSON deeper
than 254 levels): after any sequence of STATE_SNAPSHOT / STATE_DELTA events, however
deep the patches try to build, the state is within ``MAX_DEPTH``, the snapshot and
the checkpoint encode, and the checkpoint loads back to the same state.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.events import nested

from agui_gateway import Reducer, SnapshotCompactor
from agui_gateway.protocol.limits import MAX_DEPTH, depth_exceeds, json_exceeds, patch_exceeds
from agui_testkit import strategies as kit


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


@pytest.mark.parametrize("n", [0, 1, 2, 50, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 300])
def test_depth_exceeds_is_exact(n: int) -> None:
    for value in (nested(n), nested(n, []), [nested(n)]):
        assert depth_exceeds(value) == (depth(value) > MAX_DEPTH)
        assert json_exceeds(value, orjson.dumps(value) if depth(value) < 250 else b"[" * 300) == (
            depth(value) > MAX_DEPTH
        )


def test_patch_exceeds_counts_the_path_and_the_value() -> None:
    path = "/a" * 60
    assert not patch_exceeds({}, [{"op": "add", "path": path, "value": nested(40)}])
    assert patch_exceeds({}, [{"op": "add", "path": path, "value": nested(41)}])
    assert patch_exceeds({}, [{"op": "replace", "path": "/x" * (MAX_DEPTH + 1), "value": 1}])
    document = {"deep": nested(80), "b": {}}
    assert not patch_exceeds(document, [{"op": "copy", "from": "/deep", "path": "/c"}])
    # 80 levels copied under a path of 21 tokens: 101.
    assert patch_exceeds(
        document, [{"op": "copy", "from": "/deep", "path": "/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v"}]
    )
    assert patch_exceeds(document, [{"op": "move", "from": "/deep", "path": "/b" + "/x" * 30}])
    assert not patch_exceeds(document, [{"op": "remove", "path": "/deep"}, {"op": "test", "path": "/b", "value": {}}])


def test_three_hundred_small_deltas_cannot_build_an_unencodable_state() -> None:
    """The issue's case, at the reducer: each delta adds one level."""
    reducer = Reducer()
    compactor = SnapshotCompactor()
    events: list[dict[str, Any]] = [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {"type": "STATE_SNAPSHOT", "snapshot": {}},
    ]
    path = ""
    for _ in range(300):
        events.append({"type": "STATE_DELTA", "delta": [{"op": "add", "path": path + "/a", "value": {}}]})
        path += "/a"
    events.append({"type": "RUN_FINISHED", "threadId": "t", "runId": "r"})
    for seq, event in enumerate(events, 1):
        reducer.apply(event)
        compactor.feed(event, seq)
    assert depth(reducer.state) == MAX_DEPTH  # as deep as allowed, and no deeper
    orjson.dumps({"state": reducer.state, "messages": reducer.messages})
    loaded = SnapshotCompactor.loads(compactor.dumps())
    assert loaded.snapshot() == compactor.snapshot()
    assert compactor.snapshot()[1] == reducer.state


_keys = st.sampled_from(["a", "b", "0", "-"])
_paths = st.lists(_keys, min_size=0, max_size=130).map(lambda keys: "".join("/" + k for k in keys))
_deep_values = st.one_of(
    kit.json_values(), st.integers(0, 140).map(nested), st.integers(0, 140).map(lambda n: [nested(n)])
)
_ops = st.one_of(
    st.fixed_dictionaries({"op": st.sampled_from(["add", "replace"]), "path": _paths, "value": _deep_values}),
    st.fixed_dictionaries({"op": st.sampled_from(["move", "copy"]), "from": _paths, "path": _paths}),
    st.fixed_dictionaries({"op": st.just("remove"), "path": _paths}),
)
_state_events = st.one_of(
    st.builds(lambda ops: {"type": "STATE_DELTA", "delta": ops}, st.lists(_ops, min_size=1, max_size=4)),
    st.builds(lambda v: {"type": "STATE_SNAPSHOT", "snapshot": v}, _deep_values),
)


@settings(max_examples=250, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(body=st.lists(_state_events, max_size=30))
def test_no_sequence_of_state_events_builds_a_state_that_cannot_be_encoded(body: list[dict[str, Any]]) -> None:
    events = [{"type": "RUN_STARTED", "threadId": "t", "runId": "r"}, *body]
    reducer = Reducer()
    compactor = SnapshotCompactor()
    for seq, event in enumerate(events, 1):
        reducer.apply(event)
        compactor.feed(event, seq)
        assert not depth_exceeds(reducer.state)
    compactor.feed({"type": "RUN_FINISHED", "threadId": "t", "runId": "r"}, len(events) + 1)
    orjson.dumps({"state": reducer.state})
    assert SnapshotCompactor.loads(compactor.dumps()).snapshot() == compactor.snapshot()
    assert compactor.snapshot()[1] == reducer.state
