"""Benchmark of gateway replicas on Redis (issue 9), beside the file store, in one run.

Real processes on loopback: a paced AG-UI agent (its own process), gateways
(``agui-gateway serve``: replicas A and B on one Redis, F on the file store), and
cheap subscriber clients in a Node process of their own (``bench/sse_subscribers.mjs``:
raw sockets; each tick event carries the agent's send time, so publish-to-deliver
latency is measured per event and per client; every client checks it got every tick
exactly once).

  1. 100 subscribers on replica B while replica A proxies a run at 2,000 events/s,
     beside the same on one file-store replica F.
  2. 1,000 subscribers of one thread on one replica at 200 events/s (file store, then
     Redis), with the gateway's added resident memory.
  3. 200 clients reconnecting at once to a finished 36,000-event thread on replica B
     (fresh replay), beside the same on the file store.
  4. Redis memory per stored event (INFO memory before and after) beside bytes per
     event on disk.

    python bench/replicas_bench.py                       # Redis at 127.0.0.1:6379
    python bench/replicas_bench.py --redis redis://127.0.0.1:6380/0 --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

THREAD_PREFIX = "bench-rep"


# ----------------------------------------------------------------------------- the agent


def serve_agent(port: int) -> None:
    """A paced agent: ``forwardedProps`` {events, rate} ticks, each carrying its send time."""
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def run(request: Request) -> StreamingResponse:
        body = orjson.loads(await request.body())
        props = body.get("forwardedProps") or {}
        count, rate = int(props.get("events", 100)), float(props.get("rate", 100))
        thread_id, run_id = body["threadId"], body["runId"]

        async def stream() -> Any:
            yield b"data: " + orjson.dumps({"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}) + b"\n\n"
            start = time.monotonic()
            sent = 0
            while sent < count:
                due = min(count, int((time.monotonic() - start) * rate) + 1)
                if due <= sent:
                    await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
                    continue
                parts = []
                for i in range(sent, due):
                    event = {"type": "CUSTOM", "name": "tick", "value": {"i": i, "t": time.time()}}
                    parts.append(b"data: " + orjson.dumps(event) + b"\n\n")
                sent = due
                yield b"".join(parts)
            done = {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id}
            yield b"data: " + orjson.dumps(done) + b"\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/", run, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited during start-up")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer")


@contextmanager
def process(args: list[str], url: str) -> Any:
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(url, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def gateway_args(port: int, agent_url: str, store: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agui_gateway.cli.main",
        "serve",
        "--port",
        str(port),
        "--agent",
        f"paced={agent_url}",
        "--log-level",
        "warning",
        *store,
    ]


def subscribers_on(port: int) -> int:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = re.search(r"^agui_gateway_subscribers ([0-9.]+)$", text, re.M)
    return int(float(found.group(1))) if found else 0


def live_phase(run_port: int, sub_port: int, sub_pid: int, clients: int, events: int, rate: float) -> dict[str, Any]:
    """``clients`` subscribers on ``sub_port``; a run of ``events`` ticks at ``rate`` through ``run_port``."""
    import httpx

    thread_id = f"{THREAD_PREFIX}-{uuid.uuid4().hex[:8]}"
    deadline_s = 60 + 3 * events / rate
    before_clients = rss(sub_pid)
    clients_proc = subprocess.Popen(
        [
            "node",
            str(ROOT / "bench" / "sse_subscribers.mjs"),
            str(sub_port),
            f"/threads/{thread_id}/events",
            str(clients),
            str(events),
            str(deadline_s),
        ],
        stdout=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while subscribers_on(sub_port) < clients and time.monotonic() < deadline:
        time.sleep(0.1)
    baseline = rss(sub_pid)
    connected_mib = (baseline - before_clients) / 2**20
    reset_peak(sub_pid)
    cpu_before, wall_before = cpu_seconds(sub_pid), time.monotonic()
    body = {
        "threadId": thread_id,
        "runId": "r1",
        "messages": [],
        "tools": [],
        "context": [],
        "state": {},
        "forwardedProps": {"events": events, "rate": rate},
    }
    with httpx.stream("POST", f"http://127.0.0.1:{run_port}/agents/paced/run", json=body, timeout=600) as r:
        for _ in r.iter_raw():
            pass
    out, _ = clients_proc.communicate(timeout=deadline_s + 60)
    result: dict[str, Any] = json.loads(out)
    result["cpu_share"] = (cpu_seconds(sub_pid) - cpu_before) / (time.monotonic() - wall_before)
    result["connected_mib"] = connected_mib
    result["added_mib"] = (rss(sub_pid, "VmHWM") - baseline) / 2**20
    result["expected"] = clients * events
    return result


def show_live(name: str, r: dict[str, Any]) -> str:
    lost = r["expected"] - r["samples"]
    return (
        f"{name}: median {r['median_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
        f"{r['complete']}/{r['clients']} clients complete (every tick once), {lost} lost; "
        f"subscribers' gateway: +{r['connected_mib']:.1f} MiB resident for the connected subscribers, "
        f"+{r['added_mib']:.1f} MiB more at the run's peak, {r['cpu_share']:.0%} of a core "
        f"(the clients' process: {r['client_cpu_share']:.0%}, "
        f"its event loop delayed {r['client_loop_delay_max_ms']:.0f} ms at most)"
    )


async def load_thread_into(store: Any, thread_id: str, log: Path) -> int:
    from agui_gateway.cli.logs import read_events
    from agui_gateway.store import NewEvent

    await store.open()
    batch: list[Any] = []
    run_id = None
    with log.open("rb") as handle:
        for event in read_events(handle):
            if event["type"] == "RUN_STARTED":
                run_id = event.get("runId")
            batch.append(NewEvent(event=event, run_id=run_id, source="agent"))
            if len(batch) == 2000:
                await store.append(thread_id, batch)
                batch = []
    if batch:
        await store.append(thread_id, batch)
    latest: int = await store.last_seq(thread_id)
    await store.close()
    return latest


def redis_used_memory(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="shorter runs (a smoke test of the script)")
    args = parser.parse_args()
    seconds = 2 if args.quick else 5

    from compact_bench import ensure_log
    from gateway_bench import phase

    prefix = f"agui-bench-{uuid.uuid4().hex[:8]}"
    data_dir = Path(tempfile.mkdtemp(prefix="agui-rep-bench-"))
    agent_port, a_port, b_port, f_port = free_port(), free_port(), free_port(), free_port()
    agent_url = f"http://127.0.0.1:{agent_port}/"
    redis_store = ["--store", args.redis, "--redis-prefix", prefix]
    try:
        with (
            process([sys.executable, __file__, "--agent-mode", str(agent_port)], agent_url),
            process(gateway_args(a_port, agent_url, redis_store), f"http://127.0.0.1:{a_port}/healthz") as a,
            process(gateway_args(b_port, agent_url, redis_store), f"http://127.0.0.1:{b_port}/healthz") as b,
            process(
                gateway_args(f_port, agent_url, ["--data", str(data_dir / "f"), "--fsync", "interval"]),
                f"http://127.0.0.1:{f_port}/healthz",
            ) as f,
        ):
            del a
            print("1. 100 subscribers while a run streams 2,000 events/s (publish-to-deliver latency)")
            cross = live_phase(a_port, b_port, b.pid, 100, 2000 * seconds, 2000)
            print("   " + show_live("Redis, run on A, subscribers on B", cross))
            single = live_phase(f_port, f_port, f.pid, 100, 2000 * seconds, 2000)
            print("   " + show_live("file store, one replica        ", single))
            print(f"   ratio p99 Redis cross-replica / file store: {cross['p99_ms'] / single['p99_ms']:.2f}x")

            print("2. 1,000 subscribers of one thread on one replica at 200 events/s")
            many_file = live_phase(f_port, f_port, f.pid, 1000, 200 * seconds * 2, 200)
            print("   " + show_live("file store", many_file))
            many_redis = live_phase(b_port, b_port, b.pid, 1000, 200 * seconds * 2, 200)
            print("   " + show_live("Redis     ", many_redis))

            print("3. 200 clients reconnecting at once to a finished 36,000-event thread")
            log = ensure_log(36_000)
            from agui_gateway.store.file import FileStore
            from agui_gateway.store.redis import RedisStore

            before = redis_used_memory(args.redis)
            thread = "bench-thread"
            latest = asyncio.run(load_thread_into(RedisStore(args.redis, prefix=prefix), thread, log))
            redis_bytes = redis_used_memory(args.redis) - before
            asyncio.run(load_thread_into(FileStore(data_dir / "f", fsync="never"), thread, log))
            disk = (data_dir / "f" / "threads" / thread / "log.jsonl").stat().st_size
            import gateway_bench

            for name, port, pid in (("Redis, replica B", b_port, b.pid), ("file store      ", f_port, f.pid)):
                asyncio.run(phase(pid, port, 1, "", latest))  # the first reader builds the checkpoint
                r = asyncio.run(phase(pid, port, 200, "", latest))
                print(
                    f"   {name}: all done in {r['wall']:.2f} s (slowest {r['slowest']:.2f} s), "
                    f"{r['bytes_per_client']:,.0f} B each, gateway +{r['added_mib']:.1f} MiB"
                )
            del gateway_bench
            print("4. storage per event")
            print(
                f"   Redis: {redis_bytes / latest:,.0f} B of used_memory per stored event "
                f"(INFO memory before/after {latest:,} events); file store: {disk / latest:,.0f} B per event "
                f"on disk; ratio {redis_bytes / disk:.2f}x"
            )
    finally:
        delete_prefix(args.redis, prefix)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--agent-mode":
        serve_agent(int(sys.argv[2]))
    else:
        main()
