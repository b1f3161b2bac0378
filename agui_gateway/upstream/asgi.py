"""In-process agents: an httpx transport that streams an ASGI app's response.

A Python agent server (FastAPI/Starlette with an AG-UI integration: pydantic-ai,
Microsoft Agent Framework, LangGraph, ADK) can run inside the gateway's process
instead of behind a second process and a network hop. The gateway still talks to
it through httpx, so the upstream client and all of its fault handling stay the
same; only the transport differs.

httpx ships an ``ASGITransport``, but as of httpx 0.28 it runs the app to
completion and buffers the whole body before returning the response
(encode/httpx#2186; the streaming PR #3059 is still open). An AG-UI run is a
long-lived SSE stream whose events must be stored and fanned out as they come,
so this transport runs the app in its own task and hands body chunks over
through a small bounded queue: the response returns at ``http.response.start``,
chunks arrive as the app sends them, and a full queue makes the app's ``send``
wait (the same back-pressure a socket gives).

Failures look like their network counterparts, so the upstream client maps them
to the same stored RUN_ERRORs: an exception before the response starts is a 500
response whose body names the exception; one after it is a ``httpx.ReadError``
(a dropped connection); closing the response early (a stop, a shutdown) tells
the app ``http.disconnect`` and cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx

log = logging.getLogger("agui_gateway.upstream")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Body chunks buffered between the app and the reader, at most: bounds the memory of
# a fast agent whose events the gateway has not stored yet.
QUEUE_CHUNKS = 64
_END = object()  # the app finished its body (``more_body`` false, or it returned)


class _AppFailed:
    """The app raised after the response had started."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Exchange:
    """One request/response exchange with the app, running in its own task."""

    def __init__(self, app: ASGIApp, scope: Scope, request: httpx.Request) -> None:
        self._app = app
        self._scope = scope
        self._request_body = request.stream
        self._started: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._chunks: asyncio.Queue[bytes | object] = asyncio.Queue(QUEUE_CHUNKS)
        self._disconnected = asyncio.Event()
        self._body_done = False
        self.task = asyncio.create_task(self._run(), name=f"asgi-agent {scope['path']}")

    async def _receive(self) -> Message:
        if not self._body_done:
            assert isinstance(self._request_body, httpx.AsyncByteStream)
            body = b"".join([part async for part in self._request_body])
            self._body_done = True
            return {"type": "http.request", "body": body, "more_body": False}
        await self._disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self._disconnected.is_set():
            # The reader went away: a server would fail the write; so does this.
            raise OSError("the gateway closed the in-process agent's response")
        if message["type"] == "http.response.start":
            if not self._started.done():
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                self._started.set_result((int(message["status"]), headers))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                await self._chunks.put(bytes(body))
            if not message.get("more_body", False):
                await self._chunks.put(_END)

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not self._started.done():
                log.exception("in-process agent %s raised before responding", self._scope["path"])
                message = f"the in-process agent raised {type(error).__name__}: {error}"
                self._started.set_result((500, [(b"content-type", b"text/plain; charset=utf-8")]))
                await self._chunks.put(message.encode())
                await self._chunks.put(_END)
            else:
                log.exception("in-process agent %s raised while streaming", self._scope["path"])
                await self._chunks.put(_AppFailed(error))
            return
        if not self._started.done():
            self._started.set_exception(httpx.RemoteProtocolError("the in-process agent returned without a response"))
        await self._chunks.put(_END)

    async def response_start(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        return await self._started

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._chunks.get()
            if item is _END:
                return
            if isinstance(item, _AppFailed):
                raise httpx.ReadError(f"the in-process agent raised {type(item.error).__name__}: {item.error}")
            assert isinstance(item, bytes)
            yield item

    async def close(self) -> None:
        self._disconnected.set()
        if not self.task.done():
            self.task.cancel()
        # The app's own cleanup runs now; its outcome was already reported or is moot.
        await asyncio.gather(self.task, return_exceptions=True)


class _ResponseBody(httpx.AsyncByteStream):
    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._exchange.body():
            yield chunk

    async def aclose(self) -> None:
        await self._exchange.close()


class AgentStartupError(RuntimeError):
    """An in-process app reported ``lifespan.startup.failed`` (or shutdown failed)."""


class AppLifespan:
    """Runs an ASGI app's lifespan (start-up before the first run, shut-down at the end).

    As lenient as uvicorn's ``lifespan="auto"``: an app that raises on the lifespan
    scope, or returns without answering, has no lifespan and needs none. The state
    the app fills in during start-up (``scope["state"]``) is handed, shallow-copied,
    to each request, as servers do.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._replies: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._replies.put)
        except Exception:  # the app has no lifespan handler (the ASGI spec's way to say so)
            log.debug("in-process agent has no lifespan support", exc_info=True)

    async def _exchange(self, message_type: str) -> None:
        assert self._task is not None
        await self._inbox.put({"type": message_type})
        reply = asyncio.ensure_future(self._replies.get())
        await asyncio.wait({reply, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not reply.done():  # the app returned without answering: no lifespan
            reply.cancel()
            return
        answer = reply.result()
        if answer["type"].endswith(".failed"):
            raise AgentStartupError(answer.get("message") or f"{message_type} failed")

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asgi-agent lifespan")
        await self._exchange("lifespan.startup")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        try:
            if not self._task.done():
                await self._exchange("lifespan.shutdown")
        finally:
            if not self._task.done():
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Sends requests to an ASGI app in this process and streams its responses."""

    def __init__(
        self,
        app: ASGIApp,
        client: tuple[str, int] = ("127.0.0.1", 0),
        state: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.state = state if state is not None else {}  # the lifespan's state, see AppLifespan

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)),
            "client": self.client,
            "state": dict(self.state),
        }
        exchange = _Exchange(self.app, scope, request)
        try:
            status, headers = await exchange.response_start()
        except BaseException:
            await exchange.close()
            raise
        return httpx.Response(status, headers=headers, stream=_ResponseBody(exchange), request=request)
