"""The streaming ASGI transport that runs in-process agents (real ASGI apps, no mocks)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from support.waiting import wait_until_async

from agui_gateway.upstream.asgi import QUEUE_CHUNKS, StreamingASGITransport

DEADLINE = 10.0


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://agent.test")


async def _start(send: Any, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})


async def test_chunks_arrive_while_the_app_is_still_running() -> None:
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _start(send)
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await release.wait()  # the reader must get "first" before this returns
        await send({"type": "http.response.body", "body": b"second", "more_body": False})

    async with _client(app) as client, client.stream("GET", "/") as response:
        chunks = response.aiter_raw()
        assert await asyncio.wait_for(chunks.__anext__(), DEADLINE) == b"first"
        release.set()
        assert [chunk async for chunk in chunks] == [b"second"]


async def test_the_request_body_and_path_reach_the_app() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.update(path=scope["path"], query=scope["query_string"], body=message["body"], method=scope["method"])
        await _start(send)
        await send({"type": "http.response.body", "body": b"ok"})

    async with _client(app) as client:
        response = await client.post("/agent/run?x=1", content=b'{"a": 1}')
    assert response.text == "ok"
    assert seen == {"path": "/agent/run", "query": b"x=1", "body": b'{"a": 1}', "method": "POST"}


async def test_an_exception_before_the_response_is_a_500_naming_it() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("model credentials missing")

    async with _client(app) as client:
        response = await client.post("/", content=b"{}")
    assert response.status_code == 500
    assert "RuntimeError: model credentials missing" in response.text


async def test_an_exception_while_streaming_is_a_read_error() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _start(send)
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("tool crashed")

    received: list[bytes] = []

    async def read_all(response: httpx.Response) -> None:
        async for chunk in response.aiter_raw():
            received.append(chunk)

    async with _client(app) as client, client.stream("GET", "/") as response:
        with pytest.raises(httpx.ReadError, match="ValueError: tool crashed"):
            await read_all(response)
    assert received == [b"partial"]


async def test_closing_early_disconnects_and_cancels_the_app() -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await _start(send)
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
        except asyncio.CancelledError:
            outcome.set_result("cancelled")
            raise
        except OSError:
            outcome.set_result("write failed")

    async with _client(app) as client:
        async with client.stream("GET", "/") as response:
            await response.aiter_raw().__anext__()
        assert await asyncio.wait_for(outcome, DEADLINE) in {"cancelled", "write failed"}


def _blocked_in_queue_put(task: asyncio.Task[Any]) -> bool:
    """``task`` is suspended inside ``asyncio.Queue.put``: it waits for room in a full queue.

    The chain of awaits (``cr_await``) leads from the task's coroutine to the innermost one,
    which is where the task is suspended now; ``put`` suspends only when the queue is full.
    """
    if task.done():
        return False
    awaited: Any = task.get_coro()
    innermost = None
    while awaited is not None and getattr(awaited, "cr_frame", None) is not None:
        innermost, awaited = awaited.cr_frame, awaited.cr_await
    return innermost is not None and innermost.f_code is asyncio.Queue.put.__code__


async def test_a_reader_that_does_not_read_holds_the_app_back() -> None:
    sent = 0

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal sent
        await _start(send)
        for _ in range(QUEUE_CHUNKS * 10):
            await send({"type": "http.response.body", "body": b"y", "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async with _client(app) as client, client.stream("GET", "/") as response:
        (producer,) = [t for t in asyncio.all_tasks() if t.get_name() == "asgi-agent /"]
        # A condition, not a timeout: the app is parked in the queue's put (the queue is full)
        # while nobody reads. The deadline only stops a hang.
        await wait_until_async(lambda: _blocked_in_queue_put(producer), DEADLINE, what="the app blocked on put")
        # It ran ahead by exactly the queue's size: those chunks are queued, the next one waits.
        assert sent == QUEUE_CHUNKS
        # Reading one chunk makes room for exactly one more, and the app parks again.
        chunks = response.aiter_raw()
        assert await chunks.__anext__() == b"y"
        await wait_until_async(lambda: sent == QUEUE_CHUNKS + 1 and _blocked_in_queue_put(producer), DEADLINE)
        assert len([chunk async for chunk in chunks]) == QUEUE_CHUNKS * 10 - 1
    assert sent == QUEUE_CHUNKS * 10


async def test_lifespan_state_reaches_requests_and_shutdown_runs() -> None:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from agui_gateway.upstream.asgi import AppLifespan

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        events.append("startup")
        yield {"model": "loaded"}
        events.append("shutdown")

    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.model)

    app = Starlette(routes=[Route("/", endpoint)], lifespan=lifespan)
    manager = AppLifespan(app)
    await manager.startup()
    async with httpx.AsyncClient(transport=StreamingASGITransport(app, state=manager.state)) as client:
        assert (await client.get("http://agent.test/")).text == "loaded"
    await manager.shutdown()
    assert events == ["startup", "shutdown"]


@pytest.mark.parametrize("style", ["raises", "returns"])
async def test_an_app_without_lifespan_support_needs_none(style: str) -> None:
    from agui_gateway.upstream.asgi import AppLifespan

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if style == "raises":
                raise RuntimeError("http only")
            return
        await _start(send)
        await send({"type": "http.response.body", "body": b"fine"})

    manager = AppLifespan(app)
    await asyncio.wait_for(manager.startup(), DEADLINE)
    async with _client(app) as client:
        assert (await client.get("/")).text == "fine"
    await asyncio.wait_for(manager.shutdown(), DEADLINE)


async def test_a_failed_startup_is_an_error_naming_the_reason() -> None:
    from agui_gateway.upstream.asgi import AgentStartupError, AppLifespan

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no API key"})

    with pytest.raises(AgentStartupError, match="no API key"):
        await AppLifespan(app).startup()
