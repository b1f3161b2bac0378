"""Count how often one run's path goes back into a server module it already left.

Usage::

    python scripts/module_path.py DIR [--python PY] [--json OUT] [--detail] [--exclude-leaves]

DIR is a source tree holding ``agui_gateway/`` (a checkout or a worktree). The
script measures the "back-and-forth count" of issue 15 on that tree, objectively,
by tracing the real gateway instead of reading its code.

Method
------
1. The gateway of DIR runs in a subprocess (``agui_gateway serve --demo
   --demo-pace 0``, file store in a temp dir, cwd a temp dir, ``PYTHONPATH=DIR``).
   The subprocess is this very file in its ``_serve`` mode: it installs a profiler
   (``sys.setprofile`` and ``threading.setprofile``) and then runs the CLI's
   ``main``. At exit it writes what it recorded, and which ``agui_gateway`` it
   imported (the script refuses a result whose package is not DIR's).
2. The profiler looks only at Python frames whose file lies in
   ``DIR/agui_gateway/server/``; each maps to its module path relative to
   ``agui_gateway/`` (``server/runtime/thread.py``). Frames elsewhere (starlette,
   the store, the protocol) are transparent.
3. Events are keyed by context: the running ``asyncio`` task, or the thread
   when no loop runs. Each context keeps a stack of server frames: a 'call' pushes,
   the matching 'return' pops. A coroutine or generator that resumes after a
   suspension also produces a 'call'; it is pushed (so calls it makes have the
   right caller) but it is a *resumption*, not a new entry: a suspended await
   chain is logically still on the stack. A resumption is told apart from a fresh
   start by the frame's last instruction (a fresh frame has not passed its first
   ``RESUME``).
4. A *re-entry* is a fresh call into module M from a different module (the
   caller is the module on top of the context's stack, or ``<outside>`` when no
   server frame is on it, e.g. starlette calling back) while M is not on the
   stack but was entered earlier in the same context. Reported per module and in
   total: every occurrence, the distinct edges ``caller -> M`` (counted once), and
   the distinct edges per context summed over contexts (an edge taken by two tasks
   counts twice; a helper called in a loop once). ``--detail`` lists, per context,
   each re-entry edge with the function entered.
5. Recording is switched by a flag file whose text names the scenario. A context
   belongs to the scenario in force when it is first seen, so the run task's tail
   (checkpoint, release) still counts for the run while the script waits, between
   the scenarios, for the run to be closed; contexts first seen while the flag says
   ``idle`` (the script's own polling of ``/metrics`` and ``/threads/{t}/runs``)
   are not recorded. Start-up and shut-down are outside the window.

Scenarios (the demo agent, a fresh thread, a fixed ``RunAgentInput``):

* ``run``: ``POST /agents/demo/run``, the caller's stream read to its end;
* ``late``: a late client's ``GET /threads/{t}/events`` (no ``Last-Event-ID``),
  read until the frame carrying the thread's last id, then closed.

Both are printed separately and summed (distinct edges of the sum: the union).

A second count (``--exclude-leaves``, printed after the first, which is always printed)
leaves out the re-entries into *leaf-only* modules: a module is leaf-only when, in this
recording (both scenarios, every context), none of its calls calls into another server
module (it never appears as the caller of a call into a different module): e.g.
``server/sse.py`` encoding a frame, ``server/runtime/active_run.py``'s properties. A
helper called in a loop re-enters its module on every call, but it is no return of the
data to a module it left: the data goes in and comes back in the same call. Such a
module is still "entered" for the count of the others.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import dis
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

THREAD_ID = "seam-path-t1"
RUN_INPUT: dict[str, Any] = {
    "threadId": THREAD_ID,
    "runId": "seam-path-r1",
    "state": {},
    "messages": [{"id": "u1", "role": "user", "content": "hi"}],
    "tools": [],
    "context": [],
    "forwardedProps": {},
}
SCENARIOS = ("run", "late")
IDLE = "idle"  # flag text: keep recording known contexts, adopt no new one
OUTSIDE = "<outside>"  # caller label when no server frame is on the stack
DEADLINE_S = 60.0
GENERATOR_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR

# ---------------------------------------------------------------- the profiler (in the gateway's process)


@dataclass
class _Context:
    scenario: str | None  # None: first seen while idle, never recorded
    label: str
    stack: list[tuple[int, str]] = field(default_factory=list)  # (id(frame), module)
    calls: list[dict[str, Any]] = field(default_factory=list)


class _Tracer:
    """The profile function: per context, each server-module call with its caller and stack."""

    def __init__(self, server_dir: Path, flag: Path) -> None:
        self.server_dir = str(server_dir.resolve()) + os.sep
        self.package_dir = str(server_dir.resolve().parent) + os.sep
        self.flag = flag
        self.modules: dict[str, str | None] = {}  # co_filename -> module path, None outside server/
        self.first_resume: dict[CodeType, int] = {}
        self.contexts: dict[object, _Context] = {}  # the live ones, by task or thread
        self.recorded: list[_Context] = []  # every context, in order of first sight
        self.flag_mtime: int | None = None
        self.flag_text: str | None = None
        self.lock = threading.Lock()

    def _module(self, filename: str) -> str | None:
        try:
            return self.modules[filename]
        except KeyError:
            path = os.path.realpath(filename)
            module = path[len(self.package_dir) :] if path.startswith(self.server_dir) else None
            self.modules[filename] = module
            return module

    def _scenario(self) -> str | None:
        try:
            mtime = os.stat(self.flag).st_mtime_ns
        except OSError:
            self.flag_mtime = self.flag_text = None
            return None
        if mtime != self.flag_mtime:
            self.flag_mtime, self.flag_text = mtime, self.flag.read_text().strip()
        return self.flag_text

    def _is_resumption(self, frame: FrameType) -> bool:
        code = frame.f_code
        if not code.co_flags & GENERATOR_FLAGS:
            return False
        start = self.first_resume.get(code)
        if start is None:
            start = next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)
            self.first_resume[code] = start
        return frame.f_lasti > start

    def __call__(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call" and event != "return":
            return
        module = self._module(frame.f_code.co_filename)
        if module is None:
            return
        scenario = self._scenario()
        if scenario is None:
            return
        key: object
        loop = asyncio._get_running_loop()
        task = asyncio.current_task(loop) if loop is not None else None
        key = task if task is not None else ("thread", threading.get_ident())
        with self.lock:
            context = self.contexts.get(key)
            if context is None:
                if event == "return":
                    return
                label = f"{module}:{frame.f_code.co_qualname}"
                if task is not None:
                    label = f"task {task.get_name()} ({label})"
                context = _Context(scenario if scenario in SCENARIOS else None, label)
                self.contexts[key] = context
                self.recorded.append(context)
            if context.scenario is None:
                return
            if event == "return":
                stack = context.stack
                for depth in range(len(stack) - 1, -1, -1):
                    if stack[depth][0] == id(frame):
                        del stack[depth:]
                        break
                if not stack and task is None:
                    # Outside a task (a loop callback, a worker thread) each outermost call is
                    # its own unit of work: the next one starts a new context.
                    del self.contexts[key]
                return
            on_stack = {m for _, m in context.stack}
            caller = context.stack[-1][1] if context.stack else OUTSIDE
            context.calls.append(
                {
                    "module": module,
                    "function": frame.f_code.co_qualname,
                    "caller": caller,
                    "fresh": not self._is_resumption(frame),
                    "on_stack": module in on_stack,
                }
            )
            context.stack.append((id(frame), module))

    def dump(self, out: Path) -> None:
        sys.setprofile(None)
        package = sys.modules.get("agui_gateway")
        result = {
            "package_file": getattr(package, "__file__", None),
            "contexts": [
                {"scenario": c.scenario, "label": c.label, "calls": c.calls}
                for c in self.recorded
                if c.scenario is not None and c.calls
            ],
        }
        out.write_text(json.dumps(result))


def _serve_traced(argv: list[str]) -> None:
    """Child mode: install the profiler, then run ``agui_gateway`` with ``argv``."""
    tracer = _Tracer(Path(os.environ["SEAM_SERVER_DIR"]), Path(os.environ["SEAM_FLAG"]))
    atexit.register(tracer.dump, Path(os.environ["SEAM_OUT"]))
    threading.setprofile(tracer)
    sys.setprofile(tracer)
    from agui_gateway.cli.main import main

    main(argv, prog_name="agui-gateway")


# ---------------------------------------------------------------- the driver (this process)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _sse_ids(lines: Iterator[str]) -> Iterator[int]:
    """The seq of each SSE frame, as its ``id:`` line (``EPOCH:SEQ``) arrives."""
    for line in lines:
        if line.startswith("id:"):
            yield int(line[3:].strip().rpartition(":")[2])


def _subscribers(client: Any) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("agui_gateway_subscribers"):
            return float(line.split()[-1])
    raise SystemExit("no agui_gateway_subscribers gauge in /metrics")


def _run_closed(client: Any) -> int | None:
    """The thread's last id once its run is closed, else None."""
    body = client.get(f"/threads/{THREAD_ID}/runs").json()
    runs = body.get("runs") or []
    if runs and all(r["status"] != "running" for r in runs):
        last: int = runs[-1]["lastSeq"]
        return last
    return None


def _drive(base: str, flag: Path) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        _until("the gateway to answer /healthz", lambda: _healthy(client))
        flag.write_text("run")
        with client.stream("POST", "/agents/demo/run", json=RUN_INPUT) as response:
            response.raise_for_status()
            for _ in response.iter_lines():
                pass
        flag.write_text(IDLE)  # run-path contexts keep recording until the run is closed
        last: list[int] = []

        def closed() -> bool:
            seq = _run_closed(client)
            if seq is None or _subscribers(client) != 0:
                return False
            last.append(seq)
            return True

        _until("the run to close", closed)
        flag.write_text("late")
        with client.stream("GET", f"/threads/{THREAD_ID}/events") as response:
            response.raise_for_status()
            for seq in _sse_ids(response.iter_lines()):
                if seq >= last[0]:
                    break
        flag.write_text(IDLE)
        _until("the late stream to be released", lambda: _subscribers(client) == 0)
        flag.unlink()


def _healthy(client: Any) -> bool:
    import httpx

    try:
        return bool(client.get("/healthz").status_code == 200)
    except httpx.TransportError:
        return False


def trace_tree(tree: Path, python: str) -> dict[str, Any]:
    """Run the scenarios against the gateway of ``tree``; the raw recording."""
    tree = tree.resolve()
    server_dir = tree / "agui_gateway" / "server"
    if not server_dir.is_dir():
        raise SystemExit(f"{server_dir} is not a directory")
    with tempfile.TemporaryDirectory(prefix="module-path-") as tmp:
        work = Path(tmp)
        flag, out = work / "recording", work / "trace.json"
        port = _free_port()
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(tree),
            SEAM_SERVER_DIR=str(server_dir),
            SEAM_FLAG=str(flag),
            SEAM_OUT=str(out),
        )
        env = {k: v for k, v in env.items() if not k.startswith("AGUI_GATEWAY_")}
        args = ["serve", "--demo", "--demo-pace", "0", "--port", str(port), "--data", str(work / "data")]
        args += ["--log-level", "warning"]
        child = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "_serve", *args], cwd=work, env=env, stdin=subprocess.DEVNULL
        )
        try:
            _drive(f"http://127.0.0.1:{port}", flag)
        finally:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if not out.exists():
            raise SystemExit(f"the gateway exited ({child.returncode}) without writing its trace")
        result: dict[str, Any] = json.loads(out.read_text())
    imported = Path(result["package_file"] or "").resolve()
    if imported != tree / "agui_gateway" / "__init__.py":
        raise SystemExit(f"the gateway imported {imported}, not the package of {tree}")
    return result


# ---------------------------------------------------------------- the count


@dataclass
class Count:
    re_entries: Counter[str] = field(default_factory=Counter)  # module -> occurrences
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)  # (caller, module) -> occurrences
    edges_per_context: Counter[str] = field(default_factory=Counter)  # module -> distinct edges summed over contexts
    visited: list[str] = field(default_factory=list)  # modules in first-visit order
    # (label, calls, re-entries, "caller -> module function" -> occurrences)
    contexts: list[tuple[str, int, int, Counter[str]]] = field(default_factory=list)

    def add(self, other: Count) -> None:
        self.re_entries.update(other.re_entries)
        self.edges.update(other.edges)
        self.edges_per_context.update(other.edges_per_context)
        self.visited += [m for m in other.visited if m not in self.visited]
        self.contexts += other.contexts


def leaf_modules(contexts: list[dict[str, Any]]) -> set[str]:
    """The modules none of whose recorded calls calls into another server module."""
    modules = {call["module"] for context in contexts for call in context["calls"]}
    callers = {call["caller"] for context in contexts for call in context["calls"] if call["caller"] != call["module"]}
    return modules - callers


def count(contexts: list[dict[str, Any]], excluded: frozenset[str] = frozenset()) -> Count:
    """The re-entries of the recorded contexts (see the module docstring, point 4), but
    none into the ``excluded`` modules."""
    total = Count()
    for context in contexts:
        entered: set[str] = set()
        edges: set[tuple[str, str]] = set()
        detail: Counter[str] = Counter()
        for call in context["calls"]:
            module, caller = call["module"], call["caller"]
            if module not in total.visited:
                total.visited.append(module)
            if (
                call["fresh"]
                and caller != module
                and not call["on_stack"]
                and module in entered
                and module not in excluded
            ):
                total.re_entries[module] += 1
                total.edges[(caller, module)] += 1
                edges.add((caller, module))
                detail[f"{caller} -> {module} {call['function']}"] += 1
            entered.add(module)
        total.edges_per_context.update(module for _, module in edges)
        total.contexts.append((context["label"], len(context["calls"]), detail.total(), detail))
    return total


def report(title: str, result: Count, detail: bool) -> str:
    lines = [f"== {title} =="]
    lines.append(f"contexts recorded: {len(result.contexts)}")
    for label, calls, found, where in result.contexts:
        lines.append(f"  {label}: {calls} calls, {found} re-entries")
        if detail:
            lines += [f"      {n:>3} x {edge}" for edge, n in where.most_common()]
    lines.append("modules visited (first-visit order): " + ", ".join(result.visited))
    per_module_edges = Counter(module for _, module in result.edges)
    lines.append(f"  {'module':<36} {'re-entries':>10} {'distinct edges':>15} {'edges per context':>18}")
    for module, n in result.re_entries.most_common():
        row = f"{n:>10} {per_module_edges[module]:>15} {result.edges_per_context[module]:>18}"
        lines.append(f"  {module:<36} {row}")
    total, distinct, per_context = result.re_entries.total(), len(result.edges), result.edges_per_context.total()
    lines.append(f"  {'TOTAL':<36} {total:>10} {distinct:>15} {per_context:>18}")
    lines.append("re-entry edges (caller -> module: occurrences):")
    for (caller, module), n in result.edges.most_common():
        lines.append(f"  {caller} -> {module}: {n}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        _serve_traced(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("tree", type=Path, help="a source tree holding agui_gateway/")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run the gateway with")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw recording here")
    parser.add_argument("--detail", action="store_true", help="list each context's re-entries with the function")
    parser.add_argument(
        "--exclude-leaves",
        action="store_true",
        help="also print the count without re-entries into leaf-only modules (see the docstring)",
    )
    options = parser.parse_args()
    raw = trace_tree(options.tree, options.python)
    if options.json is not None:
        options.json.write_text(json.dumps(raw, indent=1))
    print(f"tree: {options.tree.resolve()} (agui_gateway imported from {raw['package_file']})")
    summed = Count()
    for scenario in SCENARIOS:
        result = count([c for c in raw["contexts"] if c["scenario"] == scenario])
        print(report(f"scenario {scenario}", result, options.detail))
        summed.add(result)
    print(report("run + late (summed; distinct edges: the union)", summed, options.detail))
    print(f"UNFILTERED: {summed.re_entries.total()} re-entries, {len(summed.edges)} distinct edges")
    if options.exclude_leaves:
        leaves = frozenset(leaf_modules(raw["contexts"]))
        print("leaf-only modules (excluded below): " + ", ".join(sorted(leaves)))
        filtered = Count()
        for scenario in SCENARIOS:
            filtered.add(count([c for c in raw["contexts"] if c["scenario"] == scenario], leaves))
        print(report("run + late, leaf-only modules excluded", filtered, options.detail))
        total, distinct = filtered.re_entries.total(), len(filtered.edges)
        print(f"LEAF-ONLY EXCLUDED: {total} re-entries, {distinct} distinct edges")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
