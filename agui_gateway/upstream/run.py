"""The lifecycle of one upstream AG-UI run: POST a RunAgentInput, read its SSE stream.

One run is one :class:`UpstreamRun`. Iterating it yields, in order:

* :class:`AgentEvent` -- an event exactly as the agent sent it (a dict), to be stored
  with ``source: "agent"``;
* :class:`~agui_gateway.upstream.sse_parser.Malformed` -- a line or event that could
  not be used; it is skipped and counted, the rest of the stream is kept;
* :class:`GatewayEvent` -- an event the gateway adds itself, to be stored with
  ``source: "gateway"``.

Whatever the agent does, the items end a run that the official client's
``verifyEvents`` accepts: every run starts with RUN_STARTED and ends with exactly one
terminal event. When the agent is unreachable, answers non-200 or not with SSE, times
out, drops the connection or ends its stream before RUN_FINISHED/RUN_ERROR, the last
items are gateway events: a RUN_STARTED if the agent never sent one (verify.ts would
accept a lone RUN_ERROR as a stream's first event, but not after an errored run of the
same thread, and a fresh replay must start with RUN_STARTED), then a RUN_ERROR whose
``code`` is one of the ``CODE_*`` constants of :mod:`.agent_http`. Reading stops at the
agent's terminal event: the run is over, and anything after it would make the thread's
log invalid.

Cancellation: cancel the task that iterates the run (the gateway's stop endpoint) and
the connection to the agent is closed at once. Iterate inside
``contextlib.aclosing(run)`` (or ``async with run``) so it is also closed when the
consumer itself is cancelled between two items. Afterwards
``run.closing_events(message, code)`` gives the events that end the run in the log
(a fault: RUN_ERROR), or ``run.cancelling_events(...)`` those that end it as stopped
(AG-UI 1.0's RUN_FINISHED with the cancelled outcome).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from agui_gateway.protocol.builders import rejected_event, run_cancelled_event, run_error_event, run_started_event
from agui_gateway.protocol.events import RUN_STARTED, TERMINAL_TYPES
from agui_gateway.protocol.limits import MAX_DEPTH, json_exceeds
from agui_gateway.protocol.types import NOT_GIVEN, Event
from agui_gateway.upstream.agent_http import (
    CODE_INCOMPLETE,
    CODE_TOTAL_TIMEOUT,
    UpstreamFault,
    UpstreamTimeouts,
    check_response,
    display_url,
    reading_fault,
    send_run,
)
from agui_gateway.upstream.sse_parser import DEFAULT_MAX_EVENT_BYTES, Malformed, SseData, SseParser, decode_event


@dataclass(frozen=True, slots=True)
class AgentEvent:
    event: Event


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    event: Event


UpstreamItem = AgentEvent | GatewayEvent | Malformed


@dataclass(slots=True)
class UpstreamStats:
    """What one run read; ``error_code`` is set when the gateway ended the run."""

    agent_events: int = 0
    malformed: int = 0
    rejected: int = 0  # agent events replaced by a rejected_event record
    bytes_received: int = 0
    error_code: str | None = None


_T = TypeVar("_T")


async def _bounded(awaitable: Awaitable[_T], deadline: float | None) -> _T:
    """Awaits under the run's total deadline. Applied per await rather than around
    the generator, because a timeout scope must not stay open across a ``yield``."""
    if deadline is None:
        return await awaitable
    async with asyncio.timeout_at(deadline):
        return await awaitable


class UpstreamRun:
    """One run of one agent, read as :data:`UpstreamItem` s (see the module doc).

    ``started`` and ``terminated`` describe the items handed out so far;
    ``run_started_input`` is the ``input`` of a RUN_STARTED the gateway has to
    synthesize (default: ``run_input`` itself; pass the trimmed form the gateway
    records, or ``None`` to leave it out).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        run_input: dict[str, Any],
        *,
        timeouts: UpstreamTimeouts,
        headers: dict[str, str] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        run_started_input: Any = NOT_GIVEN,
    ) -> None:
        self._client = client
        self._url = url
        self._run_input = run_input
        self._timeouts = timeouts
        self._headers = headers or {}
        self._max_event_bytes = max_event_bytes
        self._started_input = run_input if run_started_input is NOT_GIVEN else run_started_input
        self._items: AsyncGenerator[UpstreamItem, None] | None = None
        # What the parser has seen (decides a synthesized RUN_STARTED, and when to
        # stop reading) versus what the consumer has been handed: a stop between
        # two items of one chunk must still end the run in the log.
        self._opened = False
        self._ended = False
        self.started = False
        self.terminated = False
        self.stats = UpstreamStats()

    # -- consumer API --------------------------------------------------------

    def __aiter__(self) -> AsyncGenerator[UpstreamItem, None]:
        if self._items is None:
            self._items = self._read()
        return self._items

    async def aclose(self) -> None:
        """Closes the upstream connection now (idempotent)."""
        if self._items is not None:
            await self._items.aclose()

    async def __aenter__(self) -> UpstreamRun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def closing_events(self, message: str, code: str) -> list[Event]:
        """The gateway events that end this run now ([] if it already ended):
        a RUN_STARTED if none was handed out, then a RUN_ERROR. Marks the run ended."""
        return self._ending([], run_error_event(message, code), code)

    def cancelling_events(self, open_parts: Sequence[Event], run_id: str, code: str) -> list[Event]:
        """The gateway events that end this run now as stopped ([] if it already ended): a
        RUN_STARTED if none was handed out, then ``open_parts`` (the events closing what the
        run left open, :class:`~agui_gateway.protocol.closing.OpenParts`), then a RUN_FINISHED
        with the cancelled outcome for ``run_id`` (the run's RUN_STARTED's). Marks the run
        ended; ``code`` is what :attr:`stats` records."""
        thread_id = self._run_input.get("threadId")
        ending = run_cancelled_event(thread_id if isinstance(thread_id, str) else "", run_id)
        return self._ending(open_parts, ending, code)

    def _ending(self, open_parts: Sequence[Event], terminal: Event, code: str) -> list[Event]:
        if self.terminated:
            return []
        events: list[Event] = []
        if not self.started:
            events.append(self._synthesized_run_started())
        else:
            events.extend(open_parts)  # nothing is open in a run that never started
        events.append(terminal)
        self.started = self.terminated = True
        self._opened = self._ended = True
        if self.stats.error_code is None:
            self.stats.error_code = code
        return events

    # -- internals ------------------------------------------------------------

    def _synthesized_run_started(self) -> Event:
        thread_id = self._run_input.get("threadId")
        run_id = self._run_input.get("runId")
        return run_started_event(
            thread_id if isinstance(thread_id, str) else "",
            run_id if isinstance(run_id, str) else "",
            self._started_input,
        )

    def _agent_item(self, event: Event) -> list[UpstreamItem]:
        items: list[UpstreamItem] = []
        if not self._opened:
            if event["type"] != RUN_STARTED:
                # A run must open with RUN_STARTED for verifyEvents and for replay.
                items.append(GatewayEvent(self._synthesized_run_started()))
            self._opened = True
        self.stats.agent_events += 1
        items.append(AgentEvent(event))
        if event["type"] in TERMINAL_TYPES:
            self._ended = True
        return items

    def _hand_out(self, item: UpstreamItem) -> UpstreamItem:
        """Records the run's progress as seen by the consumer, just before it gets ``item``."""
        if not isinstance(item, Malformed):
            kind = item.event["type"]
            if kind == RUN_STARTED:
                self.started = True
            elif kind in TERMINAL_TYPES:
                self.terminated = True
        return item

    def _convert(self, parsed: list[SseData | Malformed]) -> list[UpstreamItem]:
        items: list[UpstreamItem] = []
        for entry in parsed:
            malformed: Malformed
            if isinstance(entry, SseData):
                decoded = decode_event(entry.data)
                if isinstance(decoded, dict) and json_exceeds(decoded, entry.data, MAX_DEPTH):
                    # Valid JSON that could never be encoded again (or served, or checkpointed):
                    # a gateway record says what was dropped, and the run goes on.
                    self.stats.rejected += 1
                    if not self._opened:
                        items.append(GatewayEvent(self._synthesized_run_started()))
                        self._opened = True
                    reason = f"event nested deeper than {MAX_DEPTH} levels"
                    items.append(GatewayEvent(rejected_event(reason, decoded["type"], len(entry.data))))
                    continue
                if isinstance(decoded, dict):
                    items.extend(self._agent_item(decoded))
                    if self._ended:
                        break  # nothing after the terminal event belongs to this run
                    continue
                malformed = decoded
            else:
                malformed = entry
            self.stats.malformed += 1
            items.append(malformed)
        return items

    async def _read(self) -> AsyncGenerator[UpstreamItem, None]:
        loop = asyncio.get_running_loop()
        total = self._timeouts.total
        deadline = None if total is None else loop.time() + total
        failure: UpstreamFault | None = None
        shown = display_url(self._url)
        try:
            response = await _bounded(
                send_run(self._client, self._url, self._run_input, self._headers, self._timeouts), deadline
            )
        except UpstreamFault as fault:
            failure = fault
        except TimeoutError:
            failure = UpstreamFault(
                CODE_TOTAL_TIMEOUT, f"agent at {shown} did not answer within the run's {total} s limit"
            )
        else:
            chunks = response.aiter_bytes()
            try:
                await _bounded(check_response(response, shown), deadline)
                parser = SseParser(self._max_event_bytes)
                while not self._ended:
                    try:
                        chunk = await _bounded(chunks.__anext__(), deadline)
                    except StopAsyncIteration:
                        for item in self._convert(parser.close()):
                            yield self._hand_out(item)
                        break
                    self.stats.bytes_received += len(chunk)
                    for item in self._convert(parser.feed(chunk)):
                        yield self._hand_out(item)
                if not self._ended:
                    failure = UpstreamFault(
                        CODE_INCOMPLETE, f"agent at {shown} ended its stream without RUN_FINISHED or RUN_ERROR"
                    )
            except UpstreamFault as fault:
                failure = fault
            except TimeoutError:
                failure = UpstreamFault(CODE_TOTAL_TIMEOUT, f"agent run at {shown} exceeded the run's {total} s limit")
            except httpx.HTTPError as error:
                failure = reading_fault(error, shown, self._timeouts)
            finally:
                # Runs on cancellation too: closing the response closes the socket.
                # httpx's byte iterator is an async generator (typed as an iterator).
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()
                await response.aclose()
        if failure is not None:
            for event in self.closing_events(failure.message, failure.code):
                yield GatewayEvent(event)
