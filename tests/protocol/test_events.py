"""The event names the hot paths use are exactly the official enum's."""

from ag_ui.core import EventType as Official

from agui_gateway.protocol import events


def test_event_types_match_the_official_enum() -> None:
    assert {e.name: e.value for e in events.EventType} == {e.name: e.value for e in Official}
    assert frozenset(e.value for e in Official) == events.ALL_TYPES
    assert len(events.ALL_TYPES) == 31
