"""CopilotKit on the gateway (issue 20): GatewayAgentRunner beside CopilotKit's own
InMemoryAgentRunner, measured side by side in one run.

1. A CopilotKit ``connect`` to a finished ~36,000-event thread: the thread stored in the
   real gateway (file store) and reached through a CopilotKit runtime whose runner is
   ``GatewayAgentRunner``, against the same runs held by an ``InMemoryAgentRunner`` in
   the measuring process. Printed: the bytes and events the front end receives, the
   time to the last event (median of ``--connects``), the messages an @ag-ui/client
   0.0.59 front end ends with, and the ratios.
2. The latency a run's events see: a paced agent sends CUSTOM ticks carrying their send
   time, through the gateway and the runner, and straight into the in-memory runner;
   printed: median, p95, p99 and max delay per event, and the extra the runner adds.

The Node side is ``clients/js/bench/copilotkit.mjs`` (the runtimes, the agent and the
client in one process); this script makes the log, stores it, starts the gateway and
prints the table.

    python bench/copilotkit_bench.py                # 36,000 events, 3 x 300 ticks
    python bench/copilotkit_bench.py --quick        # 3,000 events, 1 x 100 ticks

Needs ``npm ci`` in clients/js (the lock file pins @copilotkit/runtime 1.75.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "js"
sys.path.insert(0, str(ROOT / "bench"))

from compact_bench import ensure_log  # noqa: E402 -- bench/ holds scripts, not a package: importable after the insert
from gateway_bench import THREAD, load_thread  # noqa: E402 -- same

AGENT = "paced"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway(data: Path, port: int, agent_port: int, log_path: Path) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "agui_gateway",
        "serve",
        "--data",
        str(data),
        "--port",
        str(port),
        "--fsync",
        "never",
        "--log-level",
        "warning",
        "--agent",
        f"{AGENT}=http://127.0.0.1:{agent_port}/",
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the gateway exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # wait-ok: polling a process start-up, not a measurement
    proc.kill()
    raise SystemExit("the gateway did not answer /healthz within 60 s")


def build_client() -> None:
    npm = shutil.which("npm")
    if npm is None or not (CLIENT / "node_modules" / "@copilotkit" / "runtime").is_dir():
        raise SystemExit("run `npm ci` in clients/js first (it installs @copilotkit/runtime 1.75.0)")
    subprocess.run([npm, "run", "build"], cwd=CLIENT, check=True, stdout=subprocess.DEVNULL)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB"


def report(result: dict[str, Any], events: int) -> None:
    connect, latency = result["connect"], result["latency"]
    runner, memory = connect["runner"], connect["memory"]
    print(
        f"\n1. CopilotKit connect to a finished thread: {result['storedEvents']:,} events in {result['runs']} runs "
        f"(--events {events}); median of {len(runner['allMs'])}"
    )
    print(f"{'':34}{'GatewayAgentRunner':>22}{'InMemoryAgentRunner':>22}{'ratio':>9}")
    rows = [
        ("bytes to the front end", kib(runner["bytes"]), kib(memory["bytes"]), ratio(runner["bytes"], memory["bytes"])),
        ("events", f"{runner['events']:,}", f"{memory['events']:,}", ratio(runner["events"], memory["events"])),
        (
            "time to the last event",
            f"{runner['medianMs']:,.1f} ms",
            f"{memory['medianMs']:,.1f} ms",
            ratio(runner["medianMs"], memory["medianMs"]),
        ),
        ("messages after (client 0.0.59)", str(result["messages"]["runner"]), str(result["messages"]["memory"]), ""),
    ]
    for label, a, b, r in rows:
        print(f"{label:34}{a:>22}{b:>22}{r:>9}")
    times = {side: [round(x, 1) for x in connect[side]["allMs"]] for side in ("runner", "memory")}
    print(f"  all times (ms): runner {times['runner']}, memory {times['memory']}")
    print(f"  event types: runner {runner['types']}")
    print(f"               memory {memory['types']}")
    print(f"  (loading the in-memory runner took {result['memoryLoadMs']:,.0f} ms, not counted)")

    a, b = latency["runner"], latency["memory"]
    print(
        f"\n2. Delay of a run's events, agent send to front-end receive: {a['samples']:,} vs {b['samples']:,} ticks "
        f"({result['ticksPerRun']} per run, one every {result['intervalMs']} ms)"
    )
    print(f"{'':34}{'GatewayAgentRunner':>22}{'InMemoryAgentRunner':>22}{'extra':>12}")
    for key, label in (("medianMs", "median"), ("p95Ms", "p95"), ("p99Ms", "p99"), ("maxMs", "max")):
        print(f"{label:34}{a[key]:>19.2f} ms{b[key]:>19.2f} ms{a[key] - b[key]:>9.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=36_000, help="events of the finished thread (default 36000)")
    parser.add_argument("--connects", type=int, default=3, help="connects per runner (median reported)")
    parser.add_argument("--ticks", type=int, default=300, help="events per latency run")
    parser.add_argument("--interval-ms", type=float, default=5.0, help="the agent's pause between ticks")
    parser.add_argument("--trials", type=int, default=3, help="latency runs per runner")
    parser.add_argument("--quick", action="store_true", help="3,000 events, 1 connect, 1 x 100 ticks")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.connects, args.ticks, args.trials = 3000, 1, 100, 1

    build_client()
    log = ensure_log(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        asyncio.run(load_thread(data, log))
        port, agent_port = free_port(), free_port()
        gateway = start_gateway(data, port, agent_port, Path(tmp) / "gateway.log")
        try:
            done = subprocess.run(
                [
                    shutil.which("node") or "node",
                    "--max-old-space-size=8192",
                    "bench/copilotkit.mjs",
                    "--gateway",
                    f"http://127.0.0.1:{port}",
                    "--gateway-agent",
                    AGENT,
                    "--agent-port",
                    str(agent_port),
                    "--log",
                    str(log),
                    "--thread",
                    THREAD,
                    "--connects",
                    str(args.connects),
                    "--ticks",
                    str(args.ticks),
                    "--interval-ms",
                    str(args.interval_ms),
                    "--trials",
                    str(args.trials),
                ],
                cwd=CLIENT,
                env={**os.environ, "COPILOTKIT_TELEMETRY_DISABLED": "true", "DO_NOT_TRACK": "1"},
                stdout=subprocess.PIPE,
                check=False,
            )
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
        if done.returncode != 0:
            print(f"clients/js/bench/copilotkit.mjs exited with {done.returncode}", file=sys.stderr)
            return done.returncode
        report(json.loads(done.stdout.decode().strip().splitlines()[-1]), args.events)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
