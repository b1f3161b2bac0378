"""The scripted agent: a real AG-UI agent on loopback whose every answer a test writes.

A :class:`Script` is one answer: a status, a content type, body chunks written one
by one (optionally paced, or held at a chunk until the test releases it, which
makes mid-run states deterministic without sleeps) and what the agent does after
the last chunk: close the body, stall, trickle keep-alive comments, or drop the
connection. A script is registered for one run id (:meth:`ScriptedAgent.script`
for events, :meth:`ScriptedAgent.answer` for raw bytes) or answers every request
(the constructor). The agent records each request and notices when the client
goes away, as a real agent's server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from support.servers import serve_app

# What the agent does after the last chunk: "end" closes the body; "stall" sends
# nothing more until the client leaves; "trickle" sends a comment every 50 ms until
# the client leaves; "abort" drops the connection mid-body.
Then = Literal["end", "stall", "trickle", "abort"]

TRICKLE_EVERY_S = 0.05


def sse(*events: dict[str, Any]) -> bytes:
    """Events as SSE ``data:`` frames, the way an agent writes them."""
    return b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)


@dataclass
class Script:
    chunks: list[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    then: Then = "end"
    hold_at: int | None = None  # write chunks[:hold_at], then wait for release()
    pace_s: float = 0.0  # pause before each chunk
    gate: threading.Event = field(default_factory=threading.Event)
    requests: list[Any] = field(default_factory=list)  # the JSON bodies this script answered

    def release(self) -> None:
        self.gate.set()


class ScriptedAgent:
    """An ASGI agent answering each POST with the script of its run id, else the default script."""

    def __init__(
        self,
        chunks: Iterable[bytes] | None = None,
        *,
        status: int = 200,
        content_type: str = "text/event-stream",
        then: Then = "end",
    ) -> None:
        self.default = None if chunks is None else Script(list(chunks), status, content_type, then)
        self._scripts: dict[str, Script] = {}
        self.requests: list[tuple[dict[str, str], bytes]] = []  # (headers, raw body) of every request
        self.disconnected = threading.Event()  # set when a client left before the answer ended

    def script(
        self, run_id: str, events: list[dict[str, Any]], *, hold_at: int | None = None, pace_s: float = 0.0
    ) -> Script:
        """Run ``run_id`` streams ``events``, one chunk per event."""
        script = Script([sse(event) for event in events], hold_at=hold_at, pace_s=pace_s)
        self._scripts[run_id] = script
        return script

    def answer(
        self,
        run_id: str,
        chunks: Iterable[bytes],
        *,
        status: int = 200,
        content_type: str = "text/event-stream",
        then: Then = "end",
    ) -> Script:
        """Run ``run_id`` gets this raw answer (any bytes, any status and content type)."""
        script = Script(list(chunks), status, content_type, then)
        self._scripts[run_id] = script
        return script

    def release_all(self) -> None:
        for script in self._scripts.values():
            script.release()
        if self.default is not None:
            self.default.release()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append(({k.decode().lower(): v.decode() for k, v in scope["headers"]}, body))
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        run_id = parsed.get("runId") if isinstance(parsed, dict) else None
        script = self._scripts.get(run_id, self.default) if isinstance(run_id, str) else self.default
        if script is None:
            await _respond(send, 404, "application/json", orjson.dumps({"error": f"no script for run {run_id!r}"}))
            return
        script.requests.append(parsed)
        await send(
            {
                "type": "http.response.start",
                "status": script.status,
                "headers": [(b"content-type", script.content_type.encode())],
            }
        )
        # After the request body, receive() returns only when the client disconnects:
        # the answer stops there, as a real server's would.
        gone = asyncio.ensure_future(receive())
        answer = asyncio.ensure_future(_write(script, send))
        try:
            await asyncio.wait({gone, answer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, answer):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        if answer.cancelled():
            self.disconnected.set()
            return
        answer.result()  # "abort" raises here, and the server drops the connection


async def _write(script: Script, send: Any) -> None:
    loop = asyncio.get_running_loop()
    for index, chunk in enumerate(script.chunks):
        if index == script.hold_at:
            # The gate is a thread event (released from the test's own loop): wait in a
            # worker thread in short slices so a cancelled answer does not hold it long.
            while not await loop.run_in_executor(None, script.gate.wait, 0.5):
                pass
        if script.pace_s:
            await asyncio.sleep(script.pace_s)  # wait-ok: the agent's pace between events, not a test wait
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if script.then == "end":
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif script.then == "stall":
        await asyncio.Event().wait()  # until the client leaves (the caller cancels this)
    elif script.then == "trickle":
        while True:
            await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
            await asyncio.sleep(TRICKLE_EVERY_S)  # wait-ok: the agent's keep-alive pace
    elif script.then == "abort":
        raise RuntimeError("scripted agent drops the connection mid-stream")


async def _respond(send: Any, status: int, content_type: str, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@contextmanager
def serve_agent() -> Iterator[tuple[ScriptedAgent, str]]:
    """A scripted agent on loopback: (the agent, its run URL)."""
    agent = ScriptedAgent()
    with serve_app(agent) as url:
        try:
            yield agent, url + "/"
        finally:
            agent.release_all()
