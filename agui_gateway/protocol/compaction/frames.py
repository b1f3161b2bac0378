"""The folded history as SSE frames the official client accepts.

The client fails a stream when one frame outgrows its buffer
(:data:`~agui_gateway.protocol.types.CLIENT_SSE_BUFFER_LIMIT`), so a history too big
for one MESSAGES_SNAPSHOT goes out over several events instead, and a message too big
for any frame goes out with its content cut and appended after (:mod:`.split`).
"""

from __future__ import annotations

from typing import Final

import orjson

from agui_gateway.protocol import events as ev
from agui_gateway.protocol.builders import run_finished_event, run_started_event
from agui_gateway.protocol.compaction.split import cut_contents
from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT, Event, Message

MAX_FRAME_BYTES: Final = CLIENT_SSE_BUFFER_LIMIT * 4 // 5
"""What the messages of one frame may weigh (8 MiB). The budget counts the messages'
JSON only; the fifth left over covers the rest of the frame: the event around them, the
thread and run ids it repeats, and the SSE field names."""


def _batches(messages: list[Message], budget: int) -> list[list[Message]]:
    """Consecutive groups of messages whose JSON stays under ``budget`` (one message at least)."""
    batches: list[list[Message]] = [[]]
    size = 0
    for message in messages:
        length = len(orjson.dumps(message)) + 1
        if batches[-1] and size + length > budget:
            batches.append([])
            size = 0
        batches[-1].append(message)
        size += length
    return batches


def history_frames(thread_id: str, run_id: str, messages: list[Message], max_frame_bytes: int) -> list[Event]:
    """The opening of the synthetic history run: its RUN_STARTED and the messages.

    Messages whose JSON fits ``max_frame_bytes`` go into one MESSAGES_SNAPSHOT.
    More are carried, in order and in frames under the limit, by the
    ``input.messages`` of consecutive synthetic RUN_STARTED events (each earlier one
    closed by its RUN_FINISHED), which the client appends exactly as a snapshot into
    an empty list would. A message too big for a frame of its own travels with its
    content cut out, appended by text-message events at the end (inside the last run).
    No messages: the RUN_STARTED alone (a fresh client holds none).
    """
    if not messages:
        return [run_started_event(thread_id, run_id)]
    if len(orjson.dumps(messages)) <= max_frame_bytes:
        return [run_started_event(thread_id, run_id), {"type": ev.MESSAGES_SNAPSHOT, "messages": messages}]
    slim = cut_contents(messages, max_frame_bytes, together=False)
    messages = slim.messages
    if slim.cut and len(orjson.dumps(messages)) <= max_frame_bytes:
        return [
            run_started_event(thread_id, run_id),
            {"type": ev.MESSAGES_SNAPSHOT, "messages": messages},
            *slim.appends,
        ]
    batches = _batches(messages, max_frame_bytes)
    frames: list[Event] = []
    for number, batch in enumerate(batches[:-1], 1):
        part = f"{run_id}.history-{number}"
        frames += [
            run_started_event(thread_id, part, {"threadId": thread_id, "runId": part, "messages": batch}),
            run_finished_event(thread_id, part),
        ]
    frames.append(
        run_started_event(thread_id, run_id, {"threadId": thread_id, "runId": run_id, "messages": batches[-1]})
    )
    return frames + slim.appends
