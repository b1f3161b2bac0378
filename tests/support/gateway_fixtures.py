"""Helpers for the gateway tests: real servers on loopback, a scripted agent, an SSE reader.

* :class:`ScriptedAgent` is a real AG-UI agent served by uvicorn on loopback: a
  test registers the events a run id streams (optionally holding the stream at
  some event until the test releases it, which makes mid-run states
  deterministic without sleeps).
* :func:`serve_gateway` runs the gateway app in-process (uvicorn in a thread,
  lifespan on); :class:`GatewayProcess` runs ``agui-gateway serve`` as a child
  process, for SIGKILL and memory tests.
* :class:`SseParser` / :func:`collect` read ``text/event-stream`` responses.

Registered as a pytest plugin in conftest.py, so its fixtures (``agent``) are
available to every test module without importing them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agui_gateway.server.app import create_app
from agui_gateway.server.config import GatewayConfig
from support.servers import serve_app, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- events


def user_message(message_id: str, text: str) -> dict[str, Any]:
    return {"id": message_id, "role": "user", "content": text}


def run_input(
    thread_id: str, run_id: str, messages: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "runId": run_id,
        "messages": messages or [],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {},
        **extra,
    }


def agent_run_events(thread_id: str, run_id: str, *, text_deltas: int = 6, tools: int = 2) -> list[dict[str, Any]]:
    """A realistic agent run: state, text, parallel tool calls with results, deltas, custom."""
    p = run_id
    events: list[dict[str, Any]] = [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id},
        {"type": "STATE_SNAPSHOT", "snapshot": {"run": run_id, "progress": 0, "todo": ["a", "b"]}},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{p}-m1", "role": "assistant"},
    ]
    events += [
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{p}-m1", "delta": f"part {i} ünïcödé "}
        for i in range(text_deltas)
    ]
    events.append({"type": "TEXT_MESSAGE_END", "messageId": f"{p}-m1"})
    for t in range(tools):
        events.append(
            {
                "type": "TOOL_CALL_START",
                "toolCallId": f"{p}-c{t}",
                "toolCallName": "lookup",
                "parentMessageId": f"{p}-m1",
            }
        )
    for piece in ('{"q":', '"x', 'y"}'):
        for t in range(tools):  # interleaved ARGS of parallel calls
            events.append({"type": "TOOL_CALL_ARGS", "toolCallId": f"{p}-c{t}", "delta": piece})
    for t in range(tools):
        events.append({"type": "TOOL_CALL_END", "toolCallId": f"{p}-c{t}"})
    for t in reversed(range(tools)):
        events.append(
            {"type": "TOOL_CALL_RESULT", "messageId": f"{p}-r{t}", "toolCallId": f"{p}-c{t}", "content": f"result {t}"}
        )
    events += [
        {"type": "STATE_DELTA", "delta": [{"op": "replace", "path": "/progress", "value": 1}]},
        {"type": "CUSTOM", "name": "progress", "value": {"done": True}},
        {"type": "TEXT_MESSAGE_START", "messageId": f"{p}-m2", "role": "assistant"},
    ]
    events += [
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": f"{p}-m2", "delta": f"answer {i}. "} for i in range(text_deltas)
    ]
    events += [
        {"type": "TEXT_MESSAGE_END", "messageId": f"{p}-m2"},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id},
    ]
    return events


# ------------------------------------------------------------------------- the agent


@dataclass
class Script:
    events: list[dict[str, Any]]
    hold_at: int | None = None  # stream events[:hold_at], then wait for release()
    pace_s: float = 0.0  # pause before each event
    gate: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies received

    def release(self) -> None:
        self.gate.set()


class ScriptedAgent:
    """An AG-UI agent that streams the events registered for each run id."""

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self.app = Starlette(routes=[Route("/", self._handle, methods=["POST"])])

    def script(
        self, run_id: str, events: list[dict[str, Any]], *, hold_at: int | None = None, pace_s: float = 0.0
    ) -> Script:
        script = Script(list(events), hold_at, pace_s)
        self._scripts[run_id] = script
        return script

    def release_all(self) -> None:
        for script in self._scripts.values():
            script.release()

    async def _handle(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        script = self._scripts.get(body.get("runId"))
        if script is None:
            return JSONResponse({"error": f"no script for run {body.get('runId')!r}"}, status_code=404)
        script.requests.append(body)
        return StreamingResponse(self._stream(script), media_type="text/event-stream")

    @staticmethod
    async def _stream(script: Script) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        for index, event in enumerate(script.events):
            if index == script.hold_at:
                while not await loop.run_in_executor(None, script.gate.wait, 0.5):
                    pass
            if script.pace_s:
                await asyncio.sleep(script.pace_s)
            yield b"data: " + orjson.dumps(event) + b"\n\n"


@contextmanager
def serve_agent() -> Iterator[tuple[ScriptedAgent, str]]:
    agent = ScriptedAgent()
    with serve_app(agent.app) as url:
        try:
            yield agent, url + "/"
        finally:
            agent.release_all()


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[ScriptedAgent, str]]:
    """One scripted agent per test module: (the agent, its run URL)."""
    with serve_agent() as served:
        yield served


# ------------------------------------------------------------------------ the gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningGateway:
    url: str
    app: Starlette

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


@contextmanager
def serve_gateway(config: GatewayConfig, store: Any = None) -> Iterator[RunningGateway]:
    """The gateway app on uvicorn in a thread (lifespan on: store opened and closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    config = config.with_overrides(host="127.0.0.1", port=port)
    app = create_app(config, store)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"gateway-{port}")
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive(), 10) or not server.started:
            raise RuntimeError("gateway did not start")
        yield RunningGateway(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def serve_scripted_gateway(data_dir: Path, agent_url: str, **overrides: Any) -> Iterator[RunningGateway]:
    """The gateway in-process with the scripted agent registered as ``scripted``."""
    config = GatewayConfig(data_dir=data_dir, agents={"scripted": agent_url}, **overrides)
    with serve_gateway(config) as gw:
        yield gw


class GatewayProcess:
    """``agui-gateway serve`` as a child process (so it can be SIGKILLed and measured)."""

    def __init__(
        self,
        data_dir: Path,
        agents: dict[str, str],
        *extra_args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.agents = agents
        self.extra_args = extra_args
        self.port = port or free_port()
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"gateway-{self.port}.log"

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        args = [
            sys.executable,
            "-c",
            "from agui_gateway.cli.main import main; main()",
            "serve",
            "--port",
            str(self.port),
            "--data",
            str(self.data_dir),
            "--log-level",
            "warning",
        ]
        for name, url in self.agents.items():
            args += ["--agent", f"{name}={url}"]
        args += list(self.extra_args)
        env = {**os.environ, **(self.env or {})}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # wait-ok: poll interval of a deadline-bounded health check
        self.kill()
        raise RuntimeError("gateway did not answer /healthz in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ------------------------------------------------------------------------------- SSE


@dataclass
class Frame:
    id: int | None
    event: dict[str, Any] | None  # None for a comment
    comment: str | None = None


class SseParser:
    """Incremental text/event-stream parser (LF line ends, as the gateway writes them)."""

    def __init__(self) -> None:
        self._buf = b""
        self._id: int | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Frame]:
        out: list[Frame] = []
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line == b"":
                if self._data:
                    out.append(Frame(self._id, orjson.loads(b"\n".join(self._data))))
                self._id, self._data = None, []
            elif line.startswith(b":"):
                out.append(Frame(None, None, line[1:].strip().decode()))
            else:
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"data":
                    self._data.append(value)
                elif name == b"id":
                    self._id = int(value)
        return out


def events_of(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f.event for f in frames if f.event is not None]


def last_id(frames: list[Frame]) -> int | None:
    ids = [f.id for f in frames if f.id is not None]
    return ids[-1] if ids else None


async def collect(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    until: Callable[[list[Frame]], bool] | None = None,
    timeout: float = 20.0,
    **kwargs: Any,
) -> list[Frame]:
    """Frames of one stream: to its end, or until ``until(frames)`` holds (then disconnect)."""
    frames: list[Frame] = []
    parser = SseParser()

    async def read() -> None:
        async with client.stream(method, url, **kwargs) as response:
            if response.status_code != 200:
                body = await response.aread()
                raise AssertionError(f"{method} {url}: HTTP {response.status_code}: {body[:500]!r}")
            async for chunk in response.aiter_bytes():
                frames.extend(parser.feed(chunk))
                if until is not None and until(frames):
                    return

    await asyncio.wait_for(read(), timeout)
    return frames


def has_event(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(f.event is not None and predicate(f.event) for f in frames)


def has_id(seq: int) -> Callable[[list[Frame]], bool]:
    return lambda frames: any(f.id is not None and f.id >= seq for f in frames)


def read_log(data_dir: Path, thread_id: str) -> list[dict[str, Any]]:
    """The stored records of a thread, straight from its JSONL file."""
    path = data_dir / "threads" / thread_id / "log.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


async def wait_for_condition(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Await until ``check()`` (sync or async) returns a truthy value; fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
