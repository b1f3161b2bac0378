"""A streaming response that closes its body iterator the moment the response ends.

Starlette's ``StreamingResponse`` cancels the task that iterates the body when
the client disconnects, but it never closes the body's async generator: what
the generator holds (a log follower, the file descriptor of the log it reads,
a subscriber slot, the bytes of the event it was sending) stays until the
garbage collector gets to it, which took minutes under load and let hundreds
of descriptors pile up. :class:`ClosingStreamingResponse` closes it in a
``finally``, shielded from the cancellation that ended the response, so every
stream releases its resources when its client goes away, deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import anyio
from starlette.responses import ContentStream, StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """``release`` (e.g. a stream slot's) runs once the response is over, however it ended."""

    def __init__(
        self,
        content: ContentStream,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, status_code, headers, media_type)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                aclose: Any = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            finally:
                if self._release is not None:
                    self._release()
