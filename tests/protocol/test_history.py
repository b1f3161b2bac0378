"""Server-side history merge (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.events import assistant_message as assistant
from support.events import user_message as user

from agui_gateway.protocol.history import HistoryConflict, merge_history

STORED = [user("u1", "hi"), assistant("a1", "hello"), user("u2", "weather?"), assistant("a2", "sunny")]


def test_only_the_new_message_is_sent() -> None:
    assert merge_history(STORED, [user("u3", "thanks")]) == [*STORED, user("u3", "thanks")]


def test_a_resent_transcript_adds_only_what_is_new() -> None:
    assert merge_history(STORED, [*STORED, user("u3", "thanks")]) == [*STORED, user("u3", "thanks")]


def test_null_fields_equal_absent_ones() -> None:
    resent = [{**STORED[0], "name": None}, user("u3", "x")]
    assert merge_history(STORED, resent) == [*STORED, user("u3", "x")]


def test_a_changed_stored_message_is_refused_with_its_id_and_fields() -> None:
    with pytest.raises(HistoryConflict) as caught:
        merge_history(STORED, [user("u2", "tampered"), user("u3", "x")])
    assert caught.value.message_id == "u2"
    assert caught.value.fields == ("content",)


def test_an_empty_thread_forwards_the_callers_messages() -> None:
    assert merge_history([], [user("u1", "a"), user("u1", "a"), user("u2", "b")]) == [user("u1", "a"), user("u2", "b")]


ids = st.sampled_from(["m1", "m2", "m3", "m4", "m5"])
messages = st.builds(user, ids, st.sampled_from(["a", "b"]))


@given(st.lists(messages, unique_by=lambda m: m["id"]), st.lists(messages))
def test_merge_keeps_the_thread_first_and_never_duplicates_an_id(stored: list, sent: list) -> None:
    stored_by_id = {m["id"]: m for m in stored}
    rewrites = [m for m in sent if m["id"] in stored_by_id and m != stored_by_id[m["id"]]]
    if rewrites:
        with pytest.raises(HistoryConflict) as caught:
            merge_history(stored, sent)
        assert caught.value.message_id == rewrites[0]["id"]
        return
    merged = merge_history(stored, sent)
    assert merged[: len(stored)] == stored
    merged_ids = [m["id"] for m in merged]
    assert len(merged_ids) == len(set(merged_ids))
    assert set(merged_ids) == {m["id"] for m in stored} | {m["id"] for m in sent}
