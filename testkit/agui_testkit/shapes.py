"""LogShape: the knobs of a generated thread log, and the named presets.

A shape says what a log contains (how many runs, what happens in each, how
often); the seed decides the details. Ranges are inclusive ``(low, high)``
pairs; ratios are per-opportunity probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Range = tuple[int, int]


@dataclass(frozen=True)
class LogShape:
    runs: int = 3
    # Each run: a user message, this many model turns (text, maybe tool calls), then a
    # final text answer (replaced, in an open last run, by a turn cut mid-stream).
    turns_per_run: Range = (1, 3)
    # Budget mode: when set, a run keeps adding model turns until it holds about this
    # many events (used by realistic_coding_agent so sizes scale linearly).
    events_per_run: int | None = None

    # Text streaming.
    text_chars: Range = (40, 400)
    max_delta_chars: int = 20
    unicode_ratio: float = 0.0  # share of text pieces drawn from the awkward-unicode corpus

    # Tool calls.
    tool_calls_per_turn: Range = (0, 2)
    args_chars: Range = (20, 300)
    parallel_tools: float = 0.0  # turns whose calls all START before any ARGS, ARGS interleaved
    nested_tool_in_text: float = 0.0  # turns where a call starts while the text is still open
    future_parent: float = 0.0  # calls whose parentMessageId names a text message streamed later
    tool_result_bytes: Range = (200, 2000)
    huge_tool_results: int = 0  # this many results of huge_tool_result_bytes in the log
    huge_tool_result_bytes: int = 0
    content_parts: float = 0.0  # results (and user messages) given as content-part arrays

    # Reasoning.
    reasoning: float = 0.0  # turns that open with a reasoning span
    encrypted_values: float = 0.0  # REASONING_ENCRYPTED_VALUE on a message / on a tool call

    # State.
    state: bool = False
    state_keys: int = 6
    state_deltas_per_turn: Range = (0, 0)
    state_ops: Range = (1, 3)
    state_snapshot_every: int = 0  # a fresh STATE_SNAPSHOT every N runs (0: only the first)
    state_max_bytes: int = 8000  # past this size the next update is a fresh snapshot (keeps state bounded)
    failing_deltas: float = 0.0  # STATE_DELTAs whose final test op does not hold
    odd_keys: bool = False  # keys needing JSON Pointer escaping, non-ASCII keys

    # Conversation snapshots.
    messages_snapshot_every: int = 0  # MESSAGES_SNAPSHOT in every Nth run
    messages_snapshot_edits: bool = False  # snapshots that also rewrite history (elide, drop)
    input_history: bool = False  # RUN_STARTED input echoes the whole conversation

    # Other event kinds.
    activity: float = 0.0  # turns with an ACTIVITY_SNAPSHOT and deltas
    custom_raw: float = 0.0  # chance of a CUSTOM/RAW event at each opportunity
    steps: bool = False
    subagents: float = 0.0  # turns that delegate to a subagent
    chunks: float = 0.0  # turns streamed with TEXT_MESSAGE_CHUNK / TOOL_CALL_CHUNK
    metadata: float = 0.0  # events carrying `metadata`
    raw_event_field: float = 0.0  # events carrying `rawEvent`
    outcomes: bool = False  # vary RUN_FINISHED result/outcome/usage (incl. interrupts)

    # Run endings.
    error_runs: float = 0.0  # runs cut short by RUN_ERROR (later runs follow)
    open_last_run: bool = False  # last run has no terminal event, text + tool call left open

    # Envelope.
    echo_input: bool = True  # RUN_STARTED carries the full RunAgentInput
    user_as_text: float = 0.0  # user turns streamed as role="user" text messages instead
    timestamps: bool = True
    thread_id: str | None = None

    def but(self, **changes: object) -> LogShape:
        return replace(self, **changes)  # type: ignore[arg-type]


def realistic_coding_agent(target_events: int = 36_000) -> LogShape:
    """A long coding-agent session of about ``target_events`` events.

    Calibrated on a real 36,000-event thread of about 3 MB: almost all events
    are TEXT_MESSAGE_CONTENT / TOOL_CALL_ARGS deltas of a few characters, tool
    results are 0.2-5 KB, around 750 events per run. Size scales linearly.
    """
    runs = max(1, round(target_events / 750))
    return LogShape(
        runs=runs,
        events_per_run=max(40, target_events // runs),
        text_chars=(150, 1200),
        max_delta_chars=10,
        unicode_ratio=0.02,
        tool_calls_per_turn=(1, 2),
        args_chars=(40, 500),
        parallel_tools=0.15,
        nested_tool_in_text=0.1,
        future_parent=0.05,
        tool_result_bytes=(200, 5000),
        reasoning=0.25,
        encrypted_values=0.05,
        state=True,
        state_keys=5,
        state_max_bytes=2500,
        state_deltas_per_turn=(0, 1),
        state_ops=(1, 2),
        steps=True,
        custom_raw=0.02,
        metadata=0.03,
        outcomes=True,
        error_runs=0.03,
    )


_BASE = LogShape()

SHAPES: dict[str, LogShape] = {
    "tiny": LogShape(
        runs=1,
        turns_per_run=(1, 1),
        text_chars=(5, 30),
        tool_calls_per_turn=(0, 1),
        args_chars=(10, 40),
        tool_result_bytes=(20, 100),
    ),
    "many_runs": _BASE.but(runs=60, turns_per_run=(1, 1), text_chars=(10, 60), tool_calls_per_turn=(0, 1)),
    "parallel_tools": _BASE.but(runs=3, tool_calls_per_turn=(2, 5), parallel_tools=0.9),
    "nested_tool_in_text": _BASE.but(runs=4, tool_calls_per_turn=(1, 3), nested_tool_in_text=0.7, future_parent=0.6),
    "reasoning": _BASE.but(runs=3, reasoning=1.0, encrypted_values=0.8, tool_calls_per_turn=(1, 2)),
    "state_heavy": _BASE.but(
        runs=4,
        state=True,
        state_keys=20,
        state_deltas_per_turn=(2, 6),
        state_ops=(1, 6),
        state_snapshot_every=2,
        failing_deltas=0.15,
        odd_keys=True,
    ),
    "activity": _BASE.but(runs=3, activity=1.0, tool_calls_per_turn=(1, 3)),
    "custom_raw": _BASE.but(runs=3, custom_raw=0.5, raw_event_field=0.2),
    "error_runs": _BASE.but(runs=10, error_runs=0.5),
    "open_last_run": _BASE.but(runs=3, open_last_run=True),
    "unicode": _BASE.but(
        runs=4, text_chars=(200, 800), unicode_ratio=0.6, odd_keys=True, state=True, state_deltas_per_turn=(1, 2)
    ),
    "huge_tool_result": _BASE.but(
        runs=2, tool_calls_per_turn=(1, 2), huge_tool_results=2, huge_tool_result_bytes=3_000_000
    ),
    "chunks": _BASE.but(runs=4, chunks=0.8, tool_calls_per_turn=(1, 3), reasoning=0.3),
    "messages_snapshot_mid": _BASE.but(
        runs=5, messages_snapshot_every=1, messages_snapshot_edits=True, input_history=True, reasoning=0.3, activity=0.3
    ),
    "subagents": _BASE.but(runs=3, subagents=0.8, steps=True, tool_calls_per_turn=(1, 2)),
    "mixed": LogShape(
        runs=12,
        turns_per_run=(1, 4),
        unicode_ratio=0.15,
        tool_calls_per_turn=(0, 4),
        parallel_tools=0.3,
        nested_tool_in_text=0.3,
        future_parent=0.1,
        tool_result_bytes=(50, 3000),
        huge_tool_results=1,
        huge_tool_result_bytes=300_000,
        content_parts=0.15,
        reasoning=0.4,
        encrypted_values=0.3,
        state=True,
        state_deltas_per_turn=(0, 3),
        state_ops=(1, 4),
        state_snapshot_every=4,
        failing_deltas=0.1,
        odd_keys=True,
        messages_snapshot_every=4,
        messages_snapshot_edits=True,
        activity=0.3,
        custom_raw=0.15,
        steps=True,
        subagents=0.15,
        chunks=0.2,
        metadata=0.1,
        raw_event_field=0.03,
        outcomes=True,
        error_runs=0.15,
        open_last_run=True,
        user_as_text=0.1,
    ),
}
SHAPES["realistic_small"] = realistic_coding_agent(3_000)
