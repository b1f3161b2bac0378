"""Deterministic generators of realistic and adversarial AG-UI thread logs.

    from agui_testkit.generate import SHAPES, generate_log, iter_log, realistic_coding_agent

    events = generate_log(SHAPES["mixed"], seed=7)          # list of event dicts
    for event in iter_log(realistic_coding_agent(360_000), seed=1):  # streaming, bounded memory
        ...

Every log starts with RUN_STARTED and is accepted by the official client's
``verifyEvents``; a shape decides what the runs contain, the seed decides the
details, and the same (shape, seed) always yields the same events. Events are
plain dicts with the protocol's camelCase keys and ``type`` strings from
``ag_ui.core.EventType``.
"""

from __future__ import annotations

from collections.abc import Iterator

from agui_testkit.planner import Planner
from agui_testkit.shapes import SHAPES, LogShape, realistic_coding_agent
from agui_testkit.writer import Event

__all__ = ["SHAPES", "LogShape", "generate_log", "iter_log", "realistic_coding_agent"]


def _resolve(shape: LogShape | str) -> LogShape:
    return SHAPES[shape] if isinstance(shape, str) else shape


def iter_log(shape: LogShape | str, seed: int = 0) -> Iterator[Event]:
    """Yield the log's events one by one, without holding the log.

    Memory stays bounded however long the log, except for shapes that need the
    conversation itself (``messages_snapshot_every`` or ``input_history``),
    which keep the message list they restate.
    """
    return Planner(_resolve(shape), seed).events()


def generate_log(shape: LogShape | str, seed: int = 0) -> list[Event]:
    """The whole log as a list (fine up to a few hundred thousand events)."""
    return list(iter_log(shape, seed))
