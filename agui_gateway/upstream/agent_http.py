"""The HTTP side of one agent run: the POST, the checks on the answer, the
timeouts, and the mapping of every transport fault to a RUN_ERROR code.

Nothing here knows about runs or events; :mod:`.run` turns an
:class:`UpstreamFault` into the events that end a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from agui_gateway.upstream.sse_parser import excerpt

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
SSE_MEDIA_TYPE = "text/event-stream"


DEFAULT_RUN_LIMIT_S = 6 * 3600.0


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Seconds. ``connect`` bounds opening the connection (and writing the request);
    ``read`` is the longest silence between two reads of the agent's response (an
    agent's heartbeat comments reset it); ``total`` bounds the whole run, ``None``
    for no bound. The defaults are the gateway's (``agui-gateway serve``)."""

    connect: float = 10.0
    read: float = 300.0
    # Generous, but finite: an agent trickling a byte now and then cannot hold a run
    # (and its thread) open forever.
    total: float | None = DEFAULT_RUN_LIMIT_S


class UpstreamFault(Exception):
    """The upstream side failed; carries the RUN_ERROR's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def display_url(url: str) -> str:
    """The agent URL without credentials or query, fit for a stored error message."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    except (httpx.InvalidURL, TypeError, ValueError):
        return "(invalid URL)"


async def send_run(
    client: httpx.AsyncClient,
    url: str,
    run_input: dict[str, Any],
    headers: dict[str, str],
    timeouts: UpstreamTimeouts,
) -> httpx.Response:
    """POST ``run_input`` to the agent and return its streaming response (headers read).

    Raises :class:`UpstreamFault` for every way the request can fail.
    """
    shown = display_url(url)
    # The caller's headers (auth, tracing) go along; the two that define the
    # exchange are ours, whatever their spelling in the caller's dict.
    sent = {k: v for k, v in headers.items() if k.lower() not in ("accept", "content-type")}
    sent.update({"accept": SSE_MEDIA_TYPE, "content-type": "application/json"})
    try:
        request = client.build_request(
            "POST",
            url,
            content=orjson.dumps(run_input),
            headers=sent,
            timeout=httpx.Timeout(
                connect=timeouts.connect, read=timeouts.read, write=timeouts.connect, pool=timeouts.connect
            ),
        )
        return await client.send(request, stream=True)
    except httpx.ConnectTimeout as error:
        raise UpstreamFault(
            CODE_UNREACHABLE, f"agent at {shown} did not accept a connection within {timeouts.connect} s"
        ) from error
    except httpx.ConnectError as error:
        raise UpstreamFault(CODE_UNREACHABLE, f"agent at {shown} is unreachable: {error}") from error
    except httpx.ReadTimeout as error:
        raise UpstreamFault(
            CODE_READ_TIMEOUT, f"agent at {shown} sent no response for {timeouts.read} s (read timeout)"
        ) from error
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
        raise UpstreamFault(CODE_DISCONNECTED, f"agent at {shown} dropped the connection: {error}") from error
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        raise UpstreamFault(CODE_UPSTREAM_ERROR, f"request to agent at {shown} failed: {error!r}") from error


async def check_response(response: httpx.Response, shown: str) -> None:
    """Raise :class:`UpstreamFault` unless the agent answered 200 with an SSE stream."""
    if response.status_code != 200:
        body = await _body_excerpt(response)
        raise UpstreamFault(
            CODE_HTTP_STATUS,
            f"agent at {shown} answered HTTP {response.status_code} {response.reason_phrase}"
            + (f": {body}" if body else ""),
        )
    content_type = response.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != SSE_MEDIA_TYPE:
        raise UpstreamFault(
            CODE_CONTENT_TYPE,
            f"agent at {shown} answered with content type '{content_type or '(none)'}' instead of {SSE_MEDIA_TYPE}",
        )


def reading_fault(error: httpx.HTTPError, shown: str, timeouts: UpstreamTimeouts) -> UpstreamFault:
    """What an error while reading the agent's stream means for the run."""
    if isinstance(error, httpx.ReadTimeout):
        return UpstreamFault(CODE_READ_TIMEOUT, f"agent at {shown} sent nothing for {timeouts.read} s (read timeout)")
    if isinstance(error, (httpx.RemoteProtocolError, httpx.ReadError)):
        return UpstreamFault(CODE_DISCONNECTED, f"agent at {shown} dropped the connection mid-stream: {error}")
    return UpstreamFault(CODE_UPSTREAM_ERROR, f"reading from agent at {shown} failed: {error!r}")


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
