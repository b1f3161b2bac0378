"""How the API's responses are encoded: JSON bodies and event streams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from agui_gateway.server.closing import ClosingStreamingResponse

# No caching of a stream, and no buffering by a proxy in front (nginx reads this header).
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json", headers=headers)


def sse_response(
    body: AsyncIterator[bytes | memoryview], release: Callable[[], None] | None = None
) -> StreamingResponse:
    """An event stream; ``body`` is closed (and ``release`` called) the moment it ends."""
    return ClosingStreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS, release=release)


def ndjson_response(body: AsyncIterator[bytes | memoryview]) -> StreamingResponse:
    return ClosingStreamingResponse(body, media_type="application/x-ndjson")
