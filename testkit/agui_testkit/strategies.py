"""Hypothesis strategies for AG-UI event streams.

``event_streams()`` draws random *valid* streams (accepted by the official
client's ``verifyEvents``) that mix every event kind with small sizes;
``raw_streams()`` adds oddities a producer may really send and a consumer must
survive (a STATE_DELTA whose test fails, results for unknown calls, reopened
messages, ...), still verify-clean.

Both draw a list of abstract actions and render it with
:func:`agui_testkit.actions.render_actions`; because actions address
entities by slot, hypothesis can delete any of them while shrinking and the
stream stays valid, so failures shrink to a handful of events. Requires the
``hypothesis`` test dependency.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from agui_testkit import text
from agui_testkit.actions import Action, render_actions

Event = dict[str, Any]

_RESERVED_KEYS = frozenset({"__proto__", "constructor", "prototype"})


def _portable_key(key: str) -> bool:
    # JavaScript orders canonical integer keys first and treats prototype names
    # specially; keys like that would make two correct consumers disagree on order.
    if key in _RESERVED_KEYS:
        return False
    return not (key.isascii() and key.isdigit() and str(int(key)) == key)


def unicode_text(min_size: int = 1, max_size: int = 20) -> st.SearchStrategy[str]:
    """Arbitrary text (no lone surrogates) mixed with the generator's awkward corpus."""
    corpus = [
        piece[:max_size] for piece in (*text.UNICODE, *text.CODE, *text.PROSE) if len(piece[:max_size]) >= min_size
    ]
    return st.one_of(
        st.text(st.characters(codec="utf-8"), min_size=min_size, max_size=max_size),
        st.sampled_from(corpus),
    )


def json_keys() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(("a", "b", "status", "a/b", "t~x", "ключ", "🙂", "")), st.text(max_size=6)).filter(
        _portable_key
    )


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """JSON values both Python and JavaScript read identically (ints within 2**53, finite floats)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53) + 1, 2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != 0.0 or str(f) == "0.0"),
        st.text(st.characters(codec="utf-8"), max_size=12),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(json_keys(), children, max_size=4)),
        max_leaves=max_leaves,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(json_keys(), json_values(6), max_size=5)


_slot = st.integers(0, 7)
_sub = st.one_of(st.none(), st.integers(0, 3))
_deltas = st.lists(unicode_text(), min_size=1, max_size=4)
_seed = st.integers(0, 2**16)
_tool_name = st.sampled_from(("read_file", "bash", "search", "write"))


def _valid_actions() -> st.SearchStrategy[Action]:
    a = st.tuples
    j = st.just
    parent = st.sampled_from(("none", "open", "finished", "future"))
    opens = [
        a(j("text_start"), st.sampled_from(("assistant", "assistant", "user", "system", "developer")), _sub),
        a(j("tool_start"), _tool_name, parent, _slot, _sub),
        a(j("reasoning_start"), _sub),
        a(j("reasoning_msg_start"), st.booleans()),
    ]
    continues = [
        a(j("text_delta"), _slot, _deltas),
        a(j("tool_args"), _slot, _deltas),
        a(j("reasoning_delta"), _slot, _deltas),
    ]
    closes = [
        a(j("text_end"), _slot),
        a(j("tool_end"), _slot),
        a(j("reasoning_msg_end"), _slot),
        a(j("reasoning_end"), _slot),
    ]
    whole = [
        a(j("text_full"), st.sampled_from(("assistant", "assistant", "user")), _sub, _deltas),
        a(j("tool_full"), _tool_name, parent, _slot, _sub, _deltas),
        a(j("reasoning_full"), _sub, st.booleans(), _deltas),
        a(j("tool_result"), _slot, st.one_of(unicode_text(0, 40), st.just([{"type": "text", "text": "part"}]))),
    ]
    chunks = [
        a(j("text_chunk"), st.booleans(), unicode_text(), st.booleans()),
        a(j("tool_chunk"), st.booleans(), _tool_name, st.booleans(), unicode_text(), st.booleans()),
        a(j("reasoning_chunk"), st.booleans(), unicode_text(), st.booleans()),
    ]
    others = [
        a(j("run_start"), st.one_of(st.none(), unicode_text(1, 40)), st.booleans()),
        a(j("run_finish"), st.integers(0, 5)),
        a(j("run_error")),
        a(j("encrypted"), st.sampled_from(("message", "tool-call")), _slot, st.text(min_size=1, max_size=16)),
        a(j("state_snapshot"), json_objects()),
        a(j("state_delta"), _seed, st.integers(1, 4)),
        a(j("messages_snapshot"), _seed),
        a(j("activity_snapshot"), st.one_of(st.none(), _slot), json_objects(), st.sampled_from((None, True, False))),
        a(j("activity_delta"), _slot, _seed),
        a(
            j("custom"),
            st.sampled_from(("PredictState", "ui.toast", "x")),
            json_values().filter(lambda v: v is not None),
        ),
        a(j("raw"), json_values().filter(lambda v: v is not None), st.one_of(st.none(), st.just("openai"))),
        a(j("meta"), json_objects()),
        a(j("step_start"), st.sampled_from(("plan", "act", "tools")), _sub),
        a(j("step_finish"), _slot),
        a(j("subagent_start"), st.booleans()),
        a(j("subagent_finish"), _slot),
        a(j("subagent_error"), _slot),
    ]
    # Weighted by kind: streaming actions dominate, as in real logs.
    return st.one_of(
        st.one_of(continues),
        st.one_of(continues),
        st.one_of(opens),
        st.one_of(whole),
        st.one_of(closes),
        st.one_of(chunks),
        st.one_of(others),
        st.one_of(others),
    )


def _odd_actions() -> st.SearchStrategy[Action]:
    a = st.tuples
    j = st.just
    return st.one_of(
        a(j("state_delta_fail"), _seed),
        a(j("state_delta_bool_test"), _seed),
        a(j("activity_delta_fail"), _slot, _seed),
        a(j("activity_delta_unknown"), _seed),
        a(j("tool_result_unknown"), unicode_text(0, 20)),
        a(j("tool_result_early"), _slot),
        a(j("tool_result_again"), _slot),
        a(j("tool_parent_user"), _tool_name),
        a(j("text_reopen"), _slot),
        a(j("tool_restart"), _slot, _tool_name),
        a(j("text_on_activity"), _slot),
        a(j("encrypted_unknown"), st.sampled_from(("message", "tool-call"))),
        a(j("messages_snapshot_drop_open"), _seed),
        a(j("error_after_finish")),
        a(
            j("state_snapshot_odd"),
            st.one_of(
                st.none(),
                st.lists(json_values(4), max_size=3),
                st.integers(-(2**53) + 1, 2**53 - 1),
                st.text(max_size=5),
            ),
        ),
    )


def action_lists(max_actions: int = 48, odd: bool = False) -> st.SearchStrategy[list[Action]]:
    """Lists of actions, drawn as blocks; half the draws are long enough to interleave a lot.

    Shrinking prefers the first alternative (short lists), so a failure found
    in a long list still shrinks to a few actions.
    """
    actions = st.one_of(_valid_actions(), _odd_actions()) if odd else _valid_actions()
    block = max(2, int(max_actions**0.5))
    short = st.lists(st.lists(actions, min_size=1, max_size=block), max_size=block)
    long = st.lists(st.lists(actions, min_size=2, max_size=block), min_size=block // 2, max_size=block)
    return st.one_of(short, long).map(lambda blocks: [action for b in blocks for action in b])


@st.composite
def _streams(draw: st.DrawFn, max_actions: int, allow_open_end: bool, odd: bool) -> list[Event]:
    actions = draw(action_lists(max_actions, odd))
    open_end = draw(st.booleans()) if allow_open_end else False
    return render_actions(actions, open_end=open_end)


def event_streams(max_actions: int = 48, allow_open_end: bool = True) -> st.SearchStrategy[list[Event]]:
    """Random valid streams mixing every event kind; may end inside an open run."""
    return _streams(max_actions, allow_open_end, odd=False)


def raw_streams(max_actions: int = 48, allow_open_end: bool = True) -> st.SearchStrategy[list[Event]]:
    """Like :func:`event_streams`, plus survivable oddities (failing patches, orphan results, ...)."""
    return _streams(max_actions, allow_open_end, odd=True)
