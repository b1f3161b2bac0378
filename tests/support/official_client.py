"""Python access to the official ``@ag-ui/client`` through the Node harness.

:class:`NodeDriver` is the one way the tests talk to Node: a long-lived process
in ``harness/``, one JSON line in and one out per request. :class:`OfficialClient`
drives the harness's replay server (``replay.mjs --serve``) with it, so a test can
run hundreds of replays without paying Node's start-up each time; a replay reports
what a (re)connecting UI built with the official client ends up holding: its
messages, its state, and the error (if any) that ended the stream. Tests that
compare a Python port with one function of the client (chunk transform, schema
enforcement) run their own small module script through :func:`module_driver`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import orjson
import pytest

Mode = Literal["connect", "run", "verify"]

# The official clients the harness carries (harness/lib/client.mjs): 1.0.0, the reference,
# and 0.0.59, the line @copilotkit/runtime 1.75.0 bundles (docs/official-clients.md).
REFERENCE_CLIENT = "1.0.0"
CLIENT_VERSIONS = (REFERENCE_CLIENT, "0.0.59")

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS_DIR = REPO_ROOT / "harness"


class HarnessNotInstalled(RuntimeError):
    """The harness's npm dependencies are missing."""


class HarnessError(RuntimeError):
    """The harness could not answer a request (bad request, crash, or timeout)."""


@dataclass(frozen=True, slots=True)
class Held:
    """What the official client's agent holds at one moment: the end state the tests compare.

    Messages, state and pending interrupts, all three: a replay that loses an
    interrupt outcome ends with the same messages and state but not the same holding.
    """

    messages: list[dict[str, Any]]
    state: Any
    pending_interrupts: list[dict[str, Any]]

    @classmethod
    def from_wire(cls, payload: Mapping[str, Any]) -> Held:
        return cls(payload["messages"], payload["state"], payload.get("pendingInterrupts", []))


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Where the official client ended up after a replay.

    ``error`` is the message of whatever ended the pipeline early (a verify
    error, a schema error, ...) or None; ``messages``/``state`` are what the
    agent held at that point. ``warnings`` are the client's console.warn and
    console.error lines, in order.
    """

    messages: list[dict[str, Any]]
    state: Any
    error: str | None
    warnings: list[str]
    pending_interrupts: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    bad_lines: int = 0
    client: str = REFERENCE_CLIENT  # the version of @ag-ui/client that replayed it
    samples: dict[int, Held] = field(default_factory=dict)  # see OfficialClient.replay's sample_after

    @classmethod
    def from_wire(cls, payload: Mapping[str, Any]) -> ReplayResult:
        return cls(
            messages=payload["messages"],
            state=payload["state"],
            error=payload["error"],
            warnings=payload["warnings"],
            pending_interrupts=payload.get("pendingInterrupts", []),
            events=payload.get("events", 0),
            bad_lines=payload.get("badLines", 0),
            client=payload.get("client", REFERENCE_CLIENT),
            samples={sample["after"]: Held.from_wire(sample) for sample in payload.get("samples", [])},
        )

    @property
    def end(self) -> Held:
        """Where the replay ended: messages, state and pending interrupts."""
        return Held(self.messages, self.state, self.pending_interrupts)


def assert_same_end(label: str, got: ReplayResult, want: ReplayResult | Held) -> None:
    """``got`` replayed cleanly (the client raised nothing) and ends holding what ``want`` holds.

    ``want`` is a reference replay (which must itself be clean) or a holding of the client.
    """
    if isinstance(want, ReplayResult):
        assert want.error is None, f"{label}: the reference stream was rejected: {want.error}"
        want = want.end
    assert got.error is None, f"{label}: the official client rejected the stream: {got.error}"
    end = got.end
    assert end.messages == want.messages, f"{label}: messages differ"
    assert end.state == want.state, f"{label}: state differs"
    assert end.pending_interrupts == want.pending_interrupts, f"{label}: pending interrupts differ"


def require_harness(harness_dir: Path = HARNESS_DIR) -> str:
    """The path of ``node``, once Node and the harness's npm packages are known to be there.

    The real client is what the tests check against; without it they would prove
    nothing, so a missing harness is an error (scripts/test.sh installs it), never a skip.
    """
    node = shutil.which("node")
    if node is None:
        raise HarnessNotInstalled("node is not on PATH; the official-client harness needs Node 20+")
    if not (harness_dir / "node_modules" / "@ag-ui" / "client").is_dir():
        raise HarnessNotInstalled(
            f"{harness_dir / 'node_modules'} is missing: run `npm ci --prefix harness` "
            "from the repository root to install the official client"
        )
    return node


def run_node_script(script: str, *args: str, timeout: float = 60) -> Any:
    """Runs an ES-module ``script`` (importing ``@ag-ui/client``) in the harness with
    ``args`` as ``process.argv.slice(1)``; returns the JSON it writes to stdout."""
    node = require_harness()
    done = subprocess.run(
        [node, "--input-type=module", "-e", script, *args],
        cwd=HARNESS_DIR,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


class NodeDriver:
    """One long-lived Node process in the harness directory: a JSON line in, a JSON line out.

    Node's start-up is paid once, then each request is one line each way.
    Requests are serialised with a lock, so one driver can be shared by a whole
    pytest session. If the process dies or a request exceeds ``timeout``
    seconds, that call raises :class:`HarnessError` (with the tail of Node's
    stderr) and the next call starts a fresh process.
    """

    def __init__(
        self,
        node_args: Sequence[str],
        *,
        name: str,
        harness_dir: Path = HARNESS_DIR,
        timeout: float = 600.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self._harness_dir = Path(harness_dir)
        self._node = require_harness(self._harness_dir)
        self._args = list(node_args)
        self._timeout = timeout
        self._env = {**os.environ, **(env or {})}
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    def ask(self, request: Any) -> Any:
        """Sends ``request`` as one JSON line and returns the decoded reply line."""
        with self._lock:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
            assert proc.stdin is not None and proc.stdout is not None
            # The watchdog kills a request that runs past the timeout; readline
            # then sees EOF and the call fails instead of hanging the suite.
            timed_out = threading.Event()

            def on_timeout() -> None:
                timed_out.set()
                proc.kill()

            watchdog = threading.Timer(self._timeout, on_timeout)
            watchdog.start()
            try:
                proc.stdin.write(orjson.dumps(request) + b"\n")
                proc.stdin.flush()
                reply = proc.stdout.readline()
            except (BrokenPipeError, OSError):
                reply = b""
            finally:
                watchdog.cancel()
            if not reply:
                tail = self._stderr_tail()
                self._stop()
                reason = f"timed out after {self._timeout}s" if timed_out.is_set() else "exited"
                raise HarnessError(f"the node {self.name} driver {reason}; stderr:\n{tail}")
            return orjson.loads(reply)

    def close(self) -> None:
        """Ends the process; a later request starts a fresh one."""
        with self._lock:
            self._stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[bytes]:
        # stderr goes to a file: a pipe nobody reads could fill and block Node.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as the process; _stop closes it
        self._proc = subprocess.Popen(
            [self._node, *self._args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self._env,
            cwd=self._harness_dir,
        )
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return str(self._stderr.read()[-4000:].decode("utf-8", "replace"))


@contextlib.contextmanager
def module_driver(script: str, name: str) -> Iterator[NodeDriver]:
    """A driver running the ES module source ``script`` (which answers each stdin line with one
    stdout line) for a module-scoped fixture; a clear failure without the harness."""
    node_args = ["--input-type=module", "-e", script]
    try:
        driver = NodeDriver(node_args, name=name, env={"SUPPRESS_TRANSFORMATION_WARNINGS": "true"})
    except HarnessNotInstalled as error:
        pytest.fail(str(error), pytrace=False)
    with driver:
        yield driver


class OfficialClient:
    """The replay server of the harness (``replay.mjs --serve``) around the official TypeScript client."""

    def __init__(
        self,
        harness_dir: Path = HARNESS_DIR,
        *,
        timeout: float = 600.0,
        env: Mapping[str, str] | None = None,
        client: str = REFERENCE_CLIENT,
    ) -> None:
        if client not in CLIENT_VERSIONS:
            raise ValueError(f"no official client {client!r} in the harness (it has {', '.join(CLIENT_VERSIONS)})")
        self.client = client
        env = {**(env or {}), "AGUI_HARNESS_CLIENT": client}
        harness_dir = Path(harness_dir)
        # A large log's replay keeps many full copies of the conversation
        # alive at once; give V8 room beyond its default heap ceiling.
        args = ["--max-old-space-size=8192", str(harness_dir / "replay.mjs"), "--serve"]
        self._driver = NodeDriver(args, name=f"replay {client}", harness_dir=harness_dir, timeout=timeout, env=env)
        self._lock = threading.Lock()  # request ids in the order the driver sends them
        self._next_id = 0

    def replay(
        self,
        events: Sequence[Mapping[str, Any]],
        mode: Mode = "connect",
        *,
        sample_after: Iterable[int] = (),
        then: Sequence[Sequence[Mapping[str, Any]]] = (),
    ) -> ReplayResult:
        """Replays ``events`` (bare events or stored-record envelopes) on a fresh agent.

        ``sample_after``: counts ``k`` of events after which the result's ``samples[k]``
        records what the agent holds, mid-stream (the stream has not ended, so nothing the
        client does at completion has run yet). ``then``: more event lists, each replayed
        by one more connection of the same agent, as a client that reconnects does.
        """
        body: dict[str, Any] = {"events": list(events), "mode": mode}
        counts = sorted(set(sample_after))
        if counts:
            body["sampleAfter"] = counts
        if then:
            body["then"] = [list(more) for more in then]
        result = self._request(body)
        missing = [k for k in counts if k not in result.samples and k <= len(events) and result.error is None]
        if missing:
            raise HarnessError(f"the harness sent no sample after {missing}")
        return result

    def replay_file(self, path: str | os.PathLike[str], mode: Mode = "connect") -> ReplayResult:
        """Replays a JSONL log; blank lines are skipped, bad lines counted in ``bad_lines``."""
        return self._request({"path": str(Path(path).resolve()), "mode": mode})

    def verify(self, events: Sequence[Mapping[str, Any]]) -> ReplayResult:
        """Runs only the official ``verifyEvents`` over ``events``; ``error`` is its verdict."""
        return self.replay(events, mode="verify")

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> OfficialClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, body: dict[str, Any]) -> ReplayResult:
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            payload = self._driver.ask({"id": request_id, **body})
            if payload.get("id") != request_id:
                self._driver.close()  # out of step: the next request starts afresh
                raise HarnessError(f"harness answered request {payload.get('id')!r}, expected {request_id}")
        if "requestError" in payload:
            raise HarnessError(payload["requestError"])
        return ReplayResult.from_wire(payload)


def js_values(value: Any) -> Any:
    """A JSON value as JavaScript holds it: every number a double.

    The official client prints 5.9e16 as 59052814611216140 and rounds integers past
    2**53; comparing its output with Python's therefore goes through doubles.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [js_values(item) for item in value]
    if isinstance(value, dict):
        return {key: js_values(item) for key, item in value.items()}
    return value


@pytest.fixture(scope="module", params=CLIENT_VERSIONS, name="official_client")
def official_client_of_each_version(
    request: pytest.FixtureRequest, official_client: OfficialClient, official_client_0059: OfficialClient
) -> OfficialClient:
    """Imported into a test module, its ``official_client`` is each version in turn: every check
    there runs under @ag-ui/client 1.0.0 and under 0.0.59, the line CopilotKit's runtime
    bundles (docs/official-clients.md). The session's replay servers are shared."""
    return official_client if request.param == REFERENCE_CLIENT else official_client_0059
