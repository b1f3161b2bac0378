"""Event type names as plain strings, taken from the official ``ag_ui`` package.

The hot paths compare ``event["type"]`` against these; they are the values of
``ag_ui.core.EventType``, never a hand-copied list. Importing ``ag_ui.core``
builds every pydantic model of the protocol, a third of a second that a
command-line run of ``agui-gateway compact`` would mostly spend on that, so the
enum is read from the official module's source when it can be (the test suite
checks the two agree) and imported otherwise.
"""

from __future__ import annotations

import enum
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING, cast

_ENUM_BLOCK = re.compile(r"^class EventType\(str, Enum\):\n(.*?)^\S", re.MULTILINE | re.DOTALL)
_MEMBER = re.compile(r'^    ([A-Z_]+) = "([A-Z_]+)"$', re.MULTILINE)


def _read_members() -> list[tuple[str, str]]:
    """The ``(NAME, "VALUE")`` members of the official enum, read from its source
    without importing it ([] if the source is not where or as expected)."""
    try:
        spec = importlib.util.find_spec("ag_ui._generated.models")
    except ImportError:  # the parent package itself is missing or laid out differently
        return []
    if spec is None or spec.origin is None:
        return []
    try:
        source = Path(spec.origin).read_text(encoding="utf-8")
    except OSError:
        return []
    block = _ENUM_BLOCK.search(source)
    return _MEMBER.findall(block.group(1)) if block else []


def _load_event_type() -> type[enum.Enum]:
    members = _read_members()
    if len(members) < 20:  # the source is not laid out as expected: pay for the import
        from ag_ui.core import EventType as Official

        return Official
    # Enum's functional API returns a new enum class; typeshed types the call as
    # making a member, so the cast states what the call returns.
    return cast("type[enum.Enum]", enum.Enum("EventType", members, type=str))


if TYPE_CHECKING:
    # The type checker sees the official enum itself; at run time its twin built
    # from the same source, which has the same members and values.
    from ag_ui.core import EventType
else:
    EventType = _load_event_type()

TEXT_MESSAGE_START = EventType.TEXT_MESSAGE_START.value
TEXT_MESSAGE_CONTENT = EventType.TEXT_MESSAGE_CONTENT.value
TEXT_MESSAGE_END = EventType.TEXT_MESSAGE_END.value
TEXT_MESSAGE_CHUNK = EventType.TEXT_MESSAGE_CHUNK.value
TOOL_CALL_START = EventType.TOOL_CALL_START.value
TOOL_CALL_ARGS = EventType.TOOL_CALL_ARGS.value
TOOL_CALL_END = EventType.TOOL_CALL_END.value
TOOL_CALL_CHUNK = EventType.TOOL_CALL_CHUNK.value
TOOL_CALL_RESULT = EventType.TOOL_CALL_RESULT.value
STATE_SNAPSHOT = EventType.STATE_SNAPSHOT.value
STATE_DELTA = EventType.STATE_DELTA.value
MESSAGES_SNAPSHOT = EventType.MESSAGES_SNAPSHOT.value
ACTIVITY_SNAPSHOT = EventType.ACTIVITY_SNAPSHOT.value
ACTIVITY_DELTA = EventType.ACTIVITY_DELTA.value
RAW = EventType.RAW.value
CUSTOM = EventType.CUSTOM.value
RUN_STARTED = EventType.RUN_STARTED.value
RUN_FINISHED = EventType.RUN_FINISHED.value
RUN_ERROR = EventType.RUN_ERROR.value
STEP_STARTED = EventType.STEP_STARTED.value
STEP_FINISHED = EventType.STEP_FINISHED.value
REASONING_START = EventType.REASONING_START.value
REASONING_MESSAGE_START = EventType.REASONING_MESSAGE_START.value
REASONING_MESSAGE_CONTENT = EventType.REASONING_MESSAGE_CONTENT.value
REASONING_MESSAGE_END = EventType.REASONING_MESSAGE_END.value
REASONING_MESSAGE_CHUNK = EventType.REASONING_MESSAGE_CHUNK.value
REASONING_END = EventType.REASONING_END.value
REASONING_ENCRYPTED_VALUE = EventType.REASONING_ENCRYPTED_VALUE.value
SUBAGENT_STARTED = EventType.SUBAGENT_STARTED.value
SUBAGENT_FINISHED = EventType.SUBAGENT_FINISHED.value
SUBAGENT_ERROR = EventType.SUBAGENT_ERROR.value

ALL_TYPES: frozenset[str] = frozenset(e.value for e in EventType)
CHUNK_TYPES = frozenset({TEXT_MESSAGE_CHUNK, TOOL_CALL_CHUNK, REASONING_MESSAGE_CHUNK})
TERMINAL_TYPES = frozenset({RUN_FINISHED, RUN_ERROR})
# Events with no effect on messages or state that a UI still consumes.
PASSTHROUGH_TYPES = frozenset({CUSTOM, RAW})
