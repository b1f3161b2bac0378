"""The gateway's client for an AG-UI agent: POST a RunAgentInput, read its SSE stream.

One run is one :class:`UpstreamRun`. Iterating it yields, in order:

* :class:`AgentEvent` -- an event exactly as the agent sent it (a dict), to be stored
  with ``source: "agent"``;
* :class:`Malformed` -- a line or event that could not be used; it is skipped and
  counted, the rest of the stream is kept;
* :class:`GatewayEvent` -- an event the gateway adds itself, to be stored with
  ``source: "gateway"``.

Whatever the agent does, the items end a run that the official client's
``verifyEvents`` accepts: every run starts with RUN_STARTED and ends with exactly one
terminal event. When the agent is unreachable, answers non-200 or not with SSE, times
out, drops the connection or ends its stream before RUN_FINISHED/RUN_ERROR, the last
items are gateway events: a RUN_STARTED if the agent never sent one (verify.ts would
accept a lone RUN_ERROR as a stream's first event, but not after an errored run of the
same thread, and a fresh replay must start with RUN_STARTED), then a RUN_ERROR whose
``code`` is one of the ``CODE_*`` constants below. Reading stops at the agent's
terminal event: the run is over, and anything after it would make the thread's log
invalid.

Cancellation: cancel the task that iterates the run (the gateway's stop endpoint) and
the connection to the agent is closed at once. Iterate inside
``contextlib.aclosing(run)`` (or ``async with run``) so it is also closed when the
consumer itself is cancelled between two items. Afterwards
``run.closing_events(message, code)`` gives the events that end the run in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
from ag_ui.core import RunErrorEvent, RunStartedEvent

from agui_gateway.protocol.events import RUN_STARTED, TERMINAL_TYPES
from agui_gateway.upstream.sse_parser import (
    DEFAULT_MAX_EVENT_BYTES,
    Malformed,
    SseData,
    SseParser,
    decode_event,
    excerpt,
)

__all__ = [
    "CODE_CONTENT_TYPE",
    "CODE_DISCONNECTED",
    "CODE_HTTP_STATUS",
    "CODE_INCOMPLETE",
    "CODE_READ_TIMEOUT",
    "CODE_TOTAL_TIMEOUT",
    "CODE_UNREACHABLE",
    "CODE_UPSTREAM_ERROR",
    "DEFAULT_MAX_EVENT_BYTES",
    "AgentEvent",
    "GatewayEvent",
    "Malformed",
    "SseParser",
    "UpstreamItem",
    "UpstreamRun",
    "UpstreamStats",
    "UpstreamTimeouts",
    "decode_event",
    "run_error_event",
    "run_started_event",
    "stream_run",
]

# RUN_ERROR codes the gateway writes for upstream faults (the protocol defines no
# vocabulary; these are short and stable so UIs and metrics can key on them).
CODE_UNREACHABLE = "upstream_unreachable"
CODE_HTTP_STATUS = "upstream_http_status"
CODE_CONTENT_TYPE = "upstream_content_type"
CODE_READ_TIMEOUT = "upstream_read_timeout"
CODE_TOTAL_TIMEOUT = "upstream_total_timeout"
CODE_DISCONNECTED = "upstream_disconnected"
CODE_INCOMPLETE = "upstream_incomplete"
CODE_UPSTREAM_ERROR = "upstream_error"

_ERROR_BODY_BYTES = 2048
_SSE_MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds. ``read`` is the longest silence between two reads of the agent's
    response (an agent's heartbeat comments reset it); ``total`` bounds the whole run,
    ``None`` for no bound."""

    connect: float = 10.0
    read: float = 120.0
    total: float | None = None


@dataclass(frozen=True, slots=True)
class AgentEvent:
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    event: dict[str, Any]


UpstreamItem = AgentEvent | GatewayEvent | Malformed


@dataclass(slots=True)
class UpstreamStats:
    """What one run read; ``error_code`` is set when the gateway ended the run."""

    agent_events: int = 0
    malformed: int = 0
    bytes_received: int = 0
    error_code: str | None = None


def run_error_event(message: str, code: str | None = None) -> dict[str, Any]:
    """A RUN_ERROR built with the official model, as a wire dict."""
    return RunErrorEvent(message=message, code=code).model_dump(by_alias=True, mode="json")


def run_started_event(thread_id: str, run_id: str, input: Any = None) -> dict[str, Any]:
    """A RUN_STARTED built with the official model; ``input`` (a RunAgentInput dict,
    e.g. carrying the run's new user messages) is attached as given."""
    event = RunStartedEvent(thread_id=thread_id, run_id=run_id).model_dump(by_alias=True, mode="json")
    if input is not None:
        event["input"] = input
    return event


# ---------------------------------------------------------------------- the run


class _RunEnded(Exception):
    """The upstream side failed; carries the RUN_ERROR's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_T = TypeVar("_T")


def _display_url(url: str) -> str:
    """The agent URL without credentials or query, fit for a stored error message."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(invalid URL)"


class UpstreamRun:
    """One run of one agent, read as :data:`UpstreamItem` s (see the module doc).

    ``started`` and ``terminated`` describe the items handed out so far;
    ``run_started_input`` is the ``input`` of a RUN_STARTED the gateway has to
    synthesize (default: ``run_input`` itself; pass the trimmed form the gateway
    records, or ``None`` to leave it out).
    """

    _UNSET: Any = object()

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        run_input: dict[str, Any],
        *,
        timeouts: UpstreamTimeouts,
        headers: dict[str, str] | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        run_started_input: Any = _UNSET,
    ) -> None:
        self._client = client
        self._url = url
        self._run_input = run_input
        self._timeouts = timeouts
        self._headers = headers or {}
        self._max_event_bytes = max_event_bytes
        self._started_input = run_input if run_started_input is UpstreamRun._UNSET else run_started_input
        self._items: AsyncIterator[UpstreamItem] | None = None
        # What the parser has seen (decides a synthesized RUN_STARTED, and when to
        # stop reading) versus what the consumer has been handed: a stop between
        # two items of one chunk must still end the run in the log.
        self._opened = False
        self._ended = False
        self.started = False
        self.terminated = False
        self.stats = UpstreamStats()

    # -- consumer API --------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[UpstreamItem]:
        if self._items is None:
            self._items = self._read()
        return self._items

    async def aclose(self) -> None:
        """Closes the upstream connection now (idempotent)."""
        if self._items is not None:
            await self._items.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> UpstreamRun:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def closing_events(self, message: str, code: str) -> list[dict[str, Any]]:
        """The gateway events that end this run now ([] if it already ended):
        a RUN_STARTED if none was handed out, then a RUN_ERROR. Marks the run ended."""
        if self.terminated:
            return []
        events: list[dict[str, Any]] = []
        if not self.started:
            events.append(self._synthesized_run_started())
        events.append(run_error_event(message, code))
        self.started = self.terminated = True
        self._opened = self._ended = True
        if self.stats.error_code is None:
            self.stats.error_code = code
        return events

    # -- internals ------------------------------------------------------------

    def _synthesized_run_started(self) -> dict[str, Any]:
        thread_id = self._run_input.get("threadId")
        run_id = self._run_input.get("runId")
        return run_started_event(
            thread_id if isinstance(thread_id, str) else "",
            run_id if isinstance(run_id, str) else "",
            self._started_input,
        )

    async def _bounded(self, awaitable: Awaitable[_T], deadline: float | None) -> _T:
        """Awaits under the run's total deadline. Applied per await rather than around
        the generator, because a timeout scope must not stay open across a ``yield``."""
        if deadline is None:
            return await awaitable
        async with asyncio.timeout_at(deadline):
            return await awaitable

    def _agent_item(self, event: dict[str, Any]) -> list[UpstreamItem]:
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
            if isinstance(entry, SseData):
                decoded = decode_event(entry.data)
                if isinstance(decoded, dict):
                    items.extend(self._agent_item(decoded))
                    if self._ended:
                        break  # nothing after the terminal event belongs to this run
                    continue
                entry = decoded
            self.stats.malformed += 1
            items.append(entry)
        return items

    async def _read(self) -> AsyncIterator[UpstreamItem]:
        loop = asyncio.get_running_loop()
        total = self._timeouts.total
        deadline = None if total is None else loop.time() + total
        failure: _RunEnded | None = None
        shown = _display_url(self._url)
        try:
            response = await self._bounded(self._send(), deadline)
        except _RunEnded as ended:
            failure = ended
        except TimeoutError:
            failure = _RunEnded(CODE_TOTAL_TIMEOUT, f"agent at {shown} did not answer within the run's {total} s limit")
        else:
            chunks = response.aiter_bytes()
            try:
                await self._bounded(self._check_response(response, shown), deadline)
                parser = SseParser(self._max_event_bytes)
                while not self._ended:
                    try:
                        chunk = await self._bounded(chunks.__anext__(), deadline)
                    except StopAsyncIteration:
                        for item in self._convert(parser.close()):
                            yield self._hand_out(item)
                        break
                    self.stats.bytes_received += len(chunk)
                    for item in self._convert(parser.feed(chunk)):
                        yield self._hand_out(item)
                if not self._ended:
                    failure = _RunEnded(
                        CODE_INCOMPLETE, f"agent at {shown} ended its stream without RUN_FINISHED or RUN_ERROR"
                    )
            except _RunEnded as ended:
                failure = ended
            except TimeoutError:
                failure = _RunEnded(CODE_TOTAL_TIMEOUT, f"agent run at {shown} exceeded the run's {total} s limit")
            except httpx.ReadTimeout:
                failure = _RunEnded(
                    CODE_READ_TIMEOUT,
                    f"agent at {shown} sent nothing for {self._timeouts.read} s (read timeout)",
                )
            except (httpx.RemoteProtocolError, httpx.ReadError) as error:
                failure = _RunEnded(CODE_DISCONNECTED, f"agent at {shown} dropped the connection mid-stream: {error}")
            except httpx.HTTPError as error:
                failure = _RunEnded(CODE_UPSTREAM_ERROR, f"reading from agent at {shown} failed: {error!r}")
            finally:
                # Runs on cancellation too: closing the response closes the socket.
                await chunks.aclose()  # type: ignore[attr-defined]
                await response.aclose()
        if failure is not None:
            for event in self.closing_events(failure.message, failure.code):
                yield GatewayEvent(event)

    async def _send(self) -> httpx.Response:
        timeouts = self._timeouts
        shown = _display_url(self._url)
        # The caller's headers (auth, tracing) go along; the two that define the
        # exchange are ours, whatever their spelling in the caller's dict.
        headers = {k: v for k, v in self._headers.items() if k.lower() not in ("accept", "content-type")}
        headers.update({"accept": _SSE_MEDIA_TYPE, "content-type": "application/json"})
        try:
            request = self._client.build_request(
                "POST",
                self._url,
                content=orjson.dumps(self._run_input),
                headers=headers,
                timeout=httpx.Timeout(
                    connect=timeouts.connect, read=timeouts.read, write=timeouts.connect, pool=timeouts.connect
                ),
            )
            return await self._client.send(request, stream=True)
        except httpx.ConnectTimeout:
            raise _RunEnded(
                CODE_UNREACHABLE, f"agent at {shown} did not accept a connection within {timeouts.connect} s"
            )
        except httpx.ConnectError as error:
            raise _RunEnded(CODE_UNREACHABLE, f"agent at {shown} is unreachable: {error}")
        except httpx.ReadTimeout:
            raise _RunEnded(
                CODE_READ_TIMEOUT, f"agent at {shown} sent no response for {timeouts.read} s (read timeout)"
            )
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
            raise _RunEnded(CODE_DISCONNECTED, f"agent at {shown} dropped the connection: {error}")
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise _RunEnded(CODE_UPSTREAM_ERROR, f"request to agent at {shown} failed: {error!r}")

    async def _check_response(self, response: httpx.Response, shown: str) -> None:
        if response.status_code != 200:
            body = await self._body_excerpt(response)
            raise _RunEnded(
                CODE_HTTP_STATUS,
                f"agent at {shown} answered HTTP {response.status_code} {response.reason_phrase}"
                + (f": {body}" if body else ""),
            )
        content_type = response.headers.get("content-type", "")
        if content_type.split(";", 1)[0].strip().lower() != _SSE_MEDIA_TYPE:
            raise _RunEnded(
                CODE_CONTENT_TYPE,
                f"agent at {shown} answered with content type '{content_type or '(none)'}' "
                f"instead of {_SSE_MEDIA_TYPE}",
            )

    @staticmethod
    async def _body_excerpt(response: httpx.Response) -> str:
        """The start of an error response's body, whitespace collapsed, for the message."""
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _ERROR_BODY_BYTES:
                    break
        except httpx.HTTPError:
            pass  # the status alone is still a clear message
        text = bytes(body[:_ERROR_BODY_BYTES]).decode("utf-8", errors="replace")
        return excerpt(" ".join(text.split()))


# The verb callers use: ``stream_run(client, url, run_input, timeouts=...)`` prepares
# one run; iterating it sends the request and reads the stream.
stream_run = UpstreamRun
