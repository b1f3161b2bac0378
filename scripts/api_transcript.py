"""Record the gateway's HTTP API as a transcript, and compare two transcripts byte for byte.

For refactors that promise "no change of behaviour": every route, status code, header and body
the same before and after. The script only talks HTTP to ``python -m agui_gateway serve`` (it
imports nothing of the package), so it works across module moves and renames::

    git worktree add /tmp/base <old-commit>
    .venv/bin/python scripts/api_transcript.py record --src /tmp/base --out /tmp/base.jsonl
    .venv/bin/python scripts/api_transcript.py record --src . --out /tmp/new.jsonl
    .venv/bin/python scripts/api_transcript.py compare /tmp/base.jsonl /tmp/new.jsonl  # exit 1: differences

``record`` serves the source tree DIR (``PYTHONPATH=DIR``, the working directory a temp dir; it
checks that DIR's package is the one imported) on a free loopback port with a fresh file store,
in three configurations (open loopback, bearer tokens, CORS origins), and sends a fixed sequence
of requests covering every route and error path, with fixed thread, run and message ids; live
streams are read up to a known frame, then closed. A transcript line holds the request, the
status, the headers (minus :data:`DROPPED_HEADERS`) and the body after :func:`normalise`, which
blanks the few values that differ from one recording of the same tree to the next. Both trees
are served by the same interpreter (``--python``, default: the one running this script), so
they need the same dependencies; a recording takes a few seconds.
"""

from __future__ import annotations

import argparse
import base64
import difflib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

Headers = dict[str, str]

# Date and Server vary by clock and version; StaticFiles derives ETag and Last-Modified from
# the files' modification times, which differ between two checkouts of the same files.
DROPPED_HEADERS = frozenset({"date", "server", "etag", "last-modified"})
UNRECORDED_BODIES = ("/metrics",)  # counters of this recording's requests and timings: status and headers only
_KEY = rb'(?<!\\)"'  # a JSON key's opening quote, not a quote escaped inside a string value
_MS = re.compile(_KEY + rb'(ts|lastActivity|startedAt|durationMs|firstEventMs)":\d+')
_CURSOR = re.compile(_KEY + rb'next":"([A-Za-z0-9_-]+)"')
_EPOCH_ID = re.compile(rb"^id: [0-9a-z]{1,32}:(?=\d+$)", re.MULTILINE)
_EPOCH = re.compile(_KEY + rb'(epoch|currentEpoch)":"[0-9a-z]{1,32}"')


def normalise(data: bytes, address: str) -> bytes:
    """The one place where recorded bytes are changed; everything else is compared as served.

    * ``127.0.0.1:<port>``, the recording's free port (in ``location`` headers, and the
      ``origin`` of the gateway's own pages): ``127.0.0.1:PORT``.
    * ``"ts": <epoch ms>`` (a stored record's append time, in ``log.jsonl``),
      ``"lastActivity": <epoch ms>`` (a thread row: ``/threads``, ``/threads/{t}/info``,
      ``/threads/changes``) and a run's ``"startedAt"``, ``"durationMs"`` and
      ``"firstEventMs"`` (``/threads/{t}/runs``): the number becomes ``"<ms>"``; a null or a
      string stays as it is. (A recorded ``content-length`` is that of the body as recorded.)
    * a thread's epoch (random per thread): in SSE ids (``id: <epoch>:SEQ``) and in
      ``"epoch"`` / ``"currentEpoch"`` fields: ``<epoch>``.
    * ``"next": "<cursor>"`` of a ``/threads`` page, base64 of ``[-lastActivity, threadId]``:
      ``"<cursor -ms THREAD>"``, only when it decodes to that shape and re-encodes to the same
      text (any other cursor stays as it is).
    """
    data = data.replace(address.encode(), b"127.0.0.1:PORT")
    data = _MS.sub(lambda m: b'"' + m.group(1) + b'":"<ms>"', data)
    data = _EPOCH_ID.sub(b"id: <epoch>:", data)
    data = _EPOCH.sub(lambda m: b'"' + m.group(1) + b'":"<epoch>"', data)
    return _CURSOR.sub(_normal_cursor, data)


def _normal_cursor(match: re.Match[bytes]) -> bytes:
    text = match.group(1)
    try:
        key = json.loads(base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)))
    except ValueError:
        return match.group(0)
    if not (isinstance(key, list) and len(key) == 2 and type(key[0]) is int and isinstance(key[1], str)):
        return match.group(0)
    if base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).rstrip(b"=") != text:
        return match.group(0)
    return b'"next":"<cursor -ms ' + key[1].encode() + b'>"'


# -- the gateway under test -------------------------------------------------------------------

AGENTS_MODULE = """from agui_gateway.upstream.demo import create_demo_app

slow = create_demo_app(pace=100.0)  # 10 s before its reasoning starts: time to stop it mid-run
"""
CONFIG = """demo_pace = 0
heartbeat = 3600
max_body_bytes = 65536
{extra}
[agents]
slow = "transcript_agents:slow"
[agents.hist]
url = "http://127.0.0.1:{port}/demo/agent/"
history = "gateway"
capabilities = {{ tools = {{ supported = true }} }}
"""
READER, WRITER, UI_ORIGIN, EVIL = "reader-token-1", "writer-token-1", "https://ui.example.com", "https://evil.example"
TOKENS = f"""max_streams_per_token = 2
tokens = [{{ token = "{READER}", access = "read", threads = ["pub-"] }},
          {{ token = "{WRITER}", access = "write", threads = ["pub-", "team-"] }}]"""
# name -> (top-level keys of the config file, command-line flags)
CONFIGS = {"open": ("", []), "tokens": (TOKENS, []), "cors": ("", ["--cors-origin", UI_ORIGIN, "--inspector"])}


@contextmanager
def serving(src: Path, python: str, name: str, work: Path) -> Iterator[str]:
    """``python -m agui_gateway serve`` of the tree ``src`` in configuration ``name``; yields its address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    extra, flags = CONFIGS[name]
    (work / "transcript_agents.py").write_text(AGENTS_MODULE)
    (work / "gateway.toml").write_text(CONFIG.format(extra=extra, port=port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGUI_GATEWAY_")}
    env |= {"PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    where = [python, "-c", "import agui_gateway; print(agui_gateway.__file__)"]
    found = subprocess.run(where, cwd=work, env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"{python} imports agui_gateway from {found}, not from {src}")
    command = [python, "-m", "agui_gateway", "serve", "--host", "127.0.0.1", "--port", str(port), "--demo"]
    command += ["--data", str(work / "data"), "--config", str(work / "gateway.toml"), *flags, "--log-level", "warning"]
    log = work / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the gateway did not start ({name}):\n{log.read_text()}")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- recording --------------------------------------------------------------------------------


def _body_field(data: bytes) -> dict[str, str]:
    try:
        return {"text": data.decode()}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


class Diverged(Exception):
    """The gateway answered so differently that the fixed sequence cannot go on."""


class Stream:
    """One request whose response body is read in steps; recorded when :meth:`finish` ends it."""

    def __init__(self, rec: Recorder, method: str, path: str, headers: Headers, body: Any, shown: str) -> None:
        self.rec, self.buf = rec, b""
        self.request: dict[str, Any] = {"method": method, "path": rec.norm(shown or path)}
        self.request["headers"] = {k: rec.norm(v) for k, v in headers.items()}
        if isinstance(body, bytes):
            self.request["body"] = _body_field(body)
        self._cm = rec.client.stream(method, path, headers=headers, content=body)
        self.response = self._cm.__enter__()
        self._chunks = self.response.iter_bytes()

    def read_until(self, needle: bytes) -> int:
        """Reads until the SSE frame holding ``needle`` is complete; returns where that frame ends."""
        while True:
            at = self.buf.find(needle)
            end = self.buf.find(b"\n\n", at) if at >= 0 else -1
            if end >= 0:
                return end + 2
            try:
                self.buf += next(self._chunks)
            except StopIteration:
                raise Diverged(f"the stream ended before {needle!r}: {self.buf[-300:]!r}") from None

    def finish(self, until: bytes | None = None) -> bytes:
        """Reads to the end of the body, or to the end of the frame holding ``until``; closes; records."""
        if until is None:
            self.buf += b"".join(self._chunks)
        else:
            end = self.read_until(until)  # first: it extends the buffer
            self.buf = self.buf[:end]
        self._cm.__exit__(None, None, None)
        self.rec.record(self.request, self.response, self.buf)
        return self.buf


class Recorder:
    def __init__(self, name: str, address: str) -> None:
        self.name, self.address = name, address
        self.client = httpx.Client(base_url=f"http://{address}", timeout=30)
        self.lines: list[dict[str, Any]] = []

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def norm(self, text: str) -> str:
        return normalise(text.encode(), self.address).decode()

    def open(self, method: str, path: str, body: Any = None, headers: Headers | None = None, shown: str = "") -> Stream:
        """``body``: JSON-encoded unless bytes (or an iterator of bytes, sent chunked)."""
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes | Iterator):
            body = json.dumps(body, separators=(",", ":")).encode()
            headers.setdefault("content-type", "application/json")
        return Stream(self, method, path, headers, body, shown)

    def send(
        self, method: str, path: str, body: Any = None, headers: Headers | None = None, until: bytes | None = None
    ) -> bytes:
        return self.open(method, path, body, headers).finish(until)

    def get(self, *paths: str, headers: Headers | None = None, until: bytes | None = None) -> None:
        for path in paths:
            self.send("GET", path, headers=headers, until=until)

    def record(self, request: dict[str, Any], response: httpx.Response, data: bytes) -> None:
        body = None if request["path"].startswith(UNRECORDED_BODIES) else data
        dropped = DROPPED_HEADERS | ({"content-length"} if body is None else set())
        normal = None if body is None else normalise(body, self.address)
        kept = [
            # The length of the body as recorded: a number normalise() blanked may vary in width.
            [k.lower(), str(len(normal)) if k.lower() == "content-length" and normal is not None else self.norm(v)]
            for k, v in response.headers.multi_items()
            if k.lower() not in dropped
        ]
        line = {"config": self.name, "step": len(self.lines), "request": request, "status": response.status_code}
        line |= {"headers": kept, "body": None if normal is None else _body_field(normal)}
        self.lines.append(line)


# -- the requests -----------------------------------------------------------------------------

JSON = {"content-type": "application/json"}
READY = b"retry: 1000"  # the preamble of every stream: what a tail with nothing to replay sends


def user(message_id: str, text: str) -> dict[str, str]:
    return {"id": message_id, "role": "user", "content": text}


def run_input(thread: str, run: str, *messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    base = {"threadId": thread, "runId": run, "state": {}, "tools": [], "context": [], "forwardedProps": {}}
    return base | {"messages": list(messages)} | extra


def upto(seq: int) -> bytes:
    """The needle of the frame with id ``seq`` (``id: SEQ`` or ``id: EPOCH:SEQ``, whichever the
    tree writes; ids ascend, so no earlier frame's id ends in the same digits): a live tail is
    read up to it, then closed."""
    return b"%d\ndata: " % seq


def scenario_open(rec: Recorder) -> None:
    """Loopback without tokens: every route, the run and stream paths, every error."""
    rec.get("/healthz", "/agents", "/threads", "/agents/demo/capabilities", "/agents/hist/capabilities")
    rec.get("/agents/nope/capabilities")
    t, u1, run = "t-main", user("u1", "Hello gateway, what can you do?"), "/agents/demo/run"
    rec.send("POST", run, run_input(t, "r1", u1))
    after_r1 = json.loads(rec.send("GET", f"/threads/{t}/snapshot"))
    rec.send("POST", run, run_input(t, "r2", user("u2", "What is the weather in Paris and Oslo?")))
    # Regenerate the second turn with an edited question: the caller drops r2, a branch from r1.
    rec.send("POST", run, run_input(t, "r3", *after_r1["messages"], user("u2", "In Lima?"), state={"mood": "ok"}))
    rec.send("POST", run, run_input("t-other", "o1", u1), {"content-type": "application/vnd.x+json"})
    rec.get(f"/threads/{t}/runs")
    seq = json.loads(rec.send("GET", f"/threads/{t}/snapshot"))["seq"]
    events = f"/threads/{t}/events"
    rec.get(events, f"{events}?after=0", f"{events}?after=5", f"{events}?after={seq - 1}", until=upto(seq))
    for last_event_id in ("5", "", "0"):  # "": what EventSource sends before it has an id (fresh)
        rec.get(events, headers={"last-event-id": last_event_id}, until=upto(seq))
    rec.get(f"{events}?after=5", headers={"last-event-id": "7"}, until=upto(seq))  # the header wins
    rec.get(f"{events}?after={seq}", until=READY)  # nothing to replay yet
    rec.get(f"{events}?after=abc", f"{events}?after={seq + 100}", f"{events}?after=-1", f"{events}?after={'9' * 30}")
    rec.get(f"{events}?run=", f"{events}?run=nope", f"{events}?run=r1&after=3", f"{events}?run=r1&after=")
    rec.get(f"{events}?run=r1", headers={"last-event-id": "3"})
    rec.get(events, headers={"last-event-id": "x"})
    rec.get(f"{events}?run=r1", f"{events}?run=r2", f"{events}?run=r3")
    for query in ("", "?after=10", f"?after={seq}", "?compact=1", "?compact=true", "?compact=1&after=3", "?after=x"):
        rec.get(f"/threads/{t}/log.jsonl{query}")
    rec.get(f"/threads/{t}/info")
    for route in ("info", "snapshot", "runs", "log.jsonl", "log.jsonl?compact=1", "events?run=r1"):
        rec.get(f"/threads/nobody/{route}")
    rec.get("/threads/nobody/events", until=READY)
    rec.get("/threads/a%20b/snapshot", "/threads/a%20b/events", "/threads/a%20b/info", "/threads/a%20b/runs")
    rec.get(f"/threads/{'x' * 129}/snapshot", "/threads/a%20b/log.jsonl")
    rec.send("POST", f"/threads/{t}/stop")
    rec.send("POST", "/threads/a%20b/stop")
    connect = run_input(t, "c1", u1)
    for last_event_id in ("", "5", str(seq + 1)):
        rec.send("POST", "/agents/demo/connect", connect, {"last-event-id": last_event_id} if last_event_id else {})
    rec.send("POST", "/agents/nope/connect", connect)
    rec.send("POST", "/agents/demo/connect", b"{", JSON)
    deep = b'{"a":' * 101 + b"1" + b"}" * 101
    for bad in (b"{not json", b"[1, 2]", b'"text"', b"", deep, b'{"threadId": "t-x"}', b'{"threadId": 5}'):
        rec.send("POST", run, bad, JSON)
    for thread in ("../etc", "t x", "", "."):
        rec.send("POST", run, run_input(thread, "rx", u1))
    rec.send("POST", run, b" " * 70_000, JSON)  # over max_body_bytes, declared by content-length
    rec.send("POST", run, iter([b" " * 40_000, b" " * 40_000]), JSON)  # the same, chunked
    rec.send("POST", run, json.dumps(run_input("t-x", "rx", u1)).encode(), {"content-type": "text/plain"})
    rec.send("POST", run, b"{}")  # a body without a content type
    rec.send("POST", "/agents/nope/run", run_input(t, "rx", u1))
    rec.send("POST", f"/threads/{t}/stop", b"stop", {"content-type": "text/plain"})
    for method, path in (("GET", run), ("DELETE", f"/threads/{t}/snapshot"), ("OPTIONS", "/threads")):
        rec.send(method, path)
    rec.get("/no/such/path")
    rec.send("POST", "/no/such/path", {})
    for host in ("evil.example", "evil.example:8000", "localhost:8000", "[::1]:8000", "127.9.9.9"):
        rec.get("/healthz", headers={"host": host})
    rec.get("/threads", headers={"origin": EVIL})
    rec.send("POST", run, run_input("t-x", "rx", u1), {"origin": "null"})
    rec.get("/threads", headers={"origin": f"http://{rec.address}"})  # the gateway's own pages
    # History kept by the gateway: the caller sends only its new message; a rewrite is a 409.
    rec.send("POST", "/agents/hist/run", run_input("t-hist", "h1", user("hu1", "Hi")))
    rec.send("POST", "/agents/hist/run", run_input("t-hist", "h2", user("hu2", "Weather in Berlin?")))
    rec.send("POST", "/agents/hist/run", run_input("t-hist", "h3", user("hu1", "Hi again")))
    rec.get("/threads/t-hist/log.jsonl")
    scenario_stop(rec)
    rec.get("/threads")
    after = json.loads(rec.send("GET", "/threads?limit=1"))["next"]
    rec.open("GET", f"/threads?limit=2&cursor={after}", shown="/threads?limit=2&cursor=<next of limit=1>").finish()
    rec.open("GET", f"/threads?cursor={after}&prefix=t-", shown="/threads?cursor=<next of limit=1>&prefix=t-").finish()
    for query in ("limit=10&prefix=t-", "prefix=t-", "prefix=zzz", "limit=1000", "limit=0", "limit=1001", "limit=x"):
        rec.get(f"/threads?{query}")
    rec.get("/threads?cursor=bad!", "/threads?cursor=WzEsMl0", "/threads?cursor=", f"/threads?prefix={'p' * 129}")
    rec.send("POST", "/demo/agent", {})
    rec.send("POST", "/demo/agent/", {})
    rec.get("/ui", "/ui/", "/ui/index.html", "/ui/missing.js", "/ui/vendor/agui-client.js")
    for name in ("api.js", "app.css", "app.js", "dom.js", "sse.js", "thread-view.js", "threads-list.js", "tree.js"):
        rec.get(f"/ui/{name}")
    rec.get("/metrics")
    rec.get("/healthz")


def scenario_stop(rec: Recorder) -> None:
    """A run stopped mid-way, seen by its caller, a live tail, a connect and the changes feed."""
    s = "slow-1"
    changes = rec.open("GET", "/threads/changes")
    changes.read_until(b"event: ready")
    tail = rec.open("GET", f"/threads/{s}/events")
    tail.read_until(READY)
    run = rec.open("POST", "/agents/slow/run", run_input(s, "s1", user("su1", "Take your time")))
    run.read_until(b'"STATE_SNAPSHOT"')
    changes.read_until(b"event: thread")  # the row of the open run, before anything else changes
    rec.send("POST", "/agents/slow/run", run_input(s, "s2", user("su2", "Me too")))  # 409: a run is open
    rec.get("/healthz", "/threads?prefix=slow", f"/threads/{s}/runs", f"/threads/{s}/snapshot", f"/threads/{s}/info")
    connect = rec.open("POST", "/agents/slow/connect", run_input(s, "s1"))
    connect.read_until(b'"STATE_SNAPSHOT"')
    seq = json.loads(rec.send("POST", f"/threads/{s}/stop"))["seq"]
    run.finish()
    connect.finish()
    tail.finish(upto(seq))
    changes.finish(b'"running":false')
    rec.send("POST", f"/threads/{s}/stop")
    rec.get(f"/threads/{s}/events", until=upto(seq))


def scenario_tokens(rec: Recorder) -> None:
    """Bearer tokens: 401 and 403 on every kind of route, listings filtered, the stream cap."""
    r, w = {"authorization": f"Bearer {READER}"}, {"authorization": f"Bearer {WRITER}"}
    u, p = user("u1", "Hello from a token"), "/threads/pub-1"
    rec.get("/healthz")
    for value in ("", "Bearer not-a-known-token", "Basic cmVhZGVyLXRva2VuLTE=", "Bearer", f"bearer {READER}"):
        rec.get("/threads", headers={"authorization": value} if value else {})
    rec.get("/metrics")
    rec.get("/metrics", headers=r)
    rec.send("POST", "/agents/nope/run", run_input("pub-1", "x1", u))
    rec.send("POST", "/agents/nope/run", run_input("pub-1", "x1", u), w)
    rec.send("POST", "/agents/demo/run", run_input("pub-1", "p1", u), r)
    rec.send("POST", "/agents/demo/run", run_input("other-1", "o1", u), w)
    rec.send("POST", "/agents/demo/run", run_input("pub-1", "p1", u), w)
    rec.send("POST", "/agents/demo/run", run_input("team-1", "m1", u), w)
    rec.get("/threads", "/threads?limit=5", headers=r)
    rec.get("/threads", "/threads?limit=5", headers=w)
    seq = json.loads(rec.send("GET", f"{p}/snapshot", headers=r))["seq"]
    for route in ("snapshot", "events", "runs", "info", "log.jsonl", "events?run=m1"):
        rec.get(f"/threads/team-1/{route}", headers=r)
        rec.get(f"{p}/{route}")
    rec.get(f"{p}/events?access_token={READER}", until=upto(seq))
    rec.get(f"{p}/events?access_token=wrong-token-1")
    rec.get(f"{p}/log.jsonl", f"{p}/runs", f"{p}/info", f"{p}/events?run=p1", headers=r)
    rec.send("POST", f"{p}/stop", headers=r)
    rec.send("POST", f"{p}/stop", headers=w)
    rec.get("/agents", "/agents/demo/capabilities")
    rec.get("/agents", "/agents/demo/capabilities", headers=r)
    rec.send("POST", "/agents/demo/connect", run_input("team-1", "c1"), r)
    rec.send("POST", "/agents/demo/connect", run_input("pub-1", "c1"), r)
    rec.get("/threads/changes")
    rec.get("/threads/changes", headers=r, until=b"event: ready")
    rec.get("/healthz", headers={"host": "gateway.example.com"})
    rec.get("/threads", headers=r | {"origin": EVIL, "host": "gateway.example.com"})
    rec.send("POST", "/agents/demo/run", b"{}", r | {"content-type": "text/plain"})
    rec.get("/ui/")
    held = [rec.open("GET", f"{p}/events", headers=r) for _ in range(2)]
    for stream in held:
        stream.read_until(upto(seq))
    rec.get(f"{p}/events", headers=r)  # 503: the token's 2 streams are open
    for stream in held:
        stream.finish(upto(seq))


def scenario_cors(rec: Recorder) -> None:
    """A configured CORS origin: preflights, CORS headers on answers and errors; the inspector."""
    ui = {"origin": UI_ORIGIN}
    preflight = ui | {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    rec.send("OPTIONS", "/agents/demo/run", headers=preflight)
    rec.send("OPTIONS", "/agents/demo/run", headers=preflight | {"origin": EVIL})
    rec.send("OPTIONS", "/threads", headers=preflight | {"access-control-request-method": "DELETE"})
    rec.send("OPTIONS", "/threads/c-1/events", headers=ui | {"access-control-request-method": "GET"})
    rec.send("POST", "/agents/demo/run", run_input("c-1", "cr1", user("u1", "Hi from a page")), ui)
    seq = json.loads(rec.send("GET", "/threads/c-1/snapshot", headers=ui))["seq"]
    rec.get("/threads/c-1/events", headers=ui, until=upto(seq))
    for origin in (UI_ORIGIN, EVIL, f"http://{rec.address}", "HTTPS://UI.EXAMPLE.COM"):
        rec.get("/threads", headers={"origin": origin})
    rec.get("/no/such/path", headers=ui)
    rec.send("POST", "/threads/c-1/stop", headers=ui)
    rec.send("POST", "/agents/demo/run", b"{", ui | {"content-type": "text/plain"})
    rec.get("/ui/inspector", "/ui/inspector/", "/ui/")


SCENARIOS = {"open": scenario_open, "tokens": scenario_tokens, "cors": scenario_cors}


# -- the commands -----------------------------------------------------------------------------


def record(src: Path, out: Path, python: str) -> int:
    """Records every configuration; one that cannot go on ends with a line saying why (exit 1)."""
    lines: list[dict[str, Any]] = []
    failed = False
    for name, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory(prefix=f"api-transcript-{name}-") as work:
            with serving(src, python, name, Path(work)) as address, Recorder(name, address) as rec:
                try:
                    scenario(rec)
                except (Diverged, httpx.HTTPError, LookupError, ValueError) as exc:  # an answer not as expected
                    failed = True
                    print(f"{name}: the recording stopped after {len(rec.lines)} exchanges: {exc!r}", file=sys.stderr)
                    stop = {"config": name, "step": len(rec.lines), "request": {"method": "-", "path": "-"}}
                    rec.lines.append(stop | {"status": None, "headers": [], "body": {"text": f"stopped: {exc!r}"}})
            lines += rec.lines
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    print(f"{len(lines)} exchanges with the gateway of {src} recorded in {out}")
    return 1 if failed else 0


def _pieces(value: Any) -> list[str]:
    """What a diff shows: headers one per line, bodies and requests split after newlines and commas."""
    if isinstance(value, list):
        return [json.dumps(item, ensure_ascii=False) + "\n" for item in value]
    text = value["text"] if isinstance(value, dict) and "text" in value else json.dumps(value, ensure_ascii=False)
    return [piece for piece in re.findall(r"[^,\n]*(?:[,\n]|$)", text) if piece]


def _load(path: Path) -> dict[str, list[dict[str, Any]]]:
    by_config: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text().splitlines():
        exchange = json.loads(line)
        by_config.setdefault(exchange["config"], []).append(exchange)
    return by_config


def compare(a: Path, b: Path) -> int:
    left, right = _load(a), _load(b)
    differences = total = 0
    for config in dict.fromkeys([*left, *right]):
        xs, ys = left.get(config, []), right.get(config, [])
        if len(xs) != len(ys):
            differences += 1
            print(f"--- [{config}] {a} has {len(xs)} exchanges, {b} has {len(ys)}")
        total += len(xs)
        for x, y in zip(xs, ys, strict=False):
            for key in ("request", "status", "headers", "body"):
                if x[key] != y[key]:
                    differences += 1
                    print(f"--- [{config} #{x['step']}] {x['request']['method']} {x['request']['path']}: {key}")
                    diff = list(difflib.unified_diff(_pieces(x[key]), _pieces(y[key]), str(a), str(b), n=2))
                    shown = [line if line.endswith("\n") else line + "\n" for line in diff[:60]]
                    sys.stdout.write("".join(shown) + ("  ...\n" if len(diff) > 60 else ""))
    print(f"{differences} difference(s)" if differences else f"identical: {total} exchanges")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="record the API of the gateway of a source tree")
    rec.add_argument("--src", type=Path, required=True, help="the source tree whose agui_gateway is served")
    rec.add_argument("--out", type=Path, required=True, help="the transcript to write (JSON lines)")
    rec.add_argument("--python", default=sys.executable, help="the interpreter to serve with (default: this one)")
    cmp = commands.add_parser("compare", help="print every difference of two transcripts; exit 1 if any")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        return record(args.src, args.out, args.python)
    return compare(args.a, args.b)


if __name__ == "__main__":
    sys.exit(main())
