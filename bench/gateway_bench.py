"""Benchmark of the gateway (issue 3): fresh replay size, and many clients at once.

Starts the real gateway (`agui-gateway serve`) as a subprocess on loopback,
over a data directory holding one finished thread of about 36,000 events, and
connects real HTTP clients (httpx) to `GET /threads/{thread}/events`:

  1. one fresh client: bytes of the replay vs the JSON of the final messages and state;
  2. N clients connecting at once to the fresh (compacted) replay;
  3. the same N clients doing the naive raw replay (`?after=0`: every stored event,
     as the old backend did), in the same run, printed side by side as ratios.

A client is done when it has received the frame carrying the thread's latest
sequence number. The gateway's added memory is its peak RSS during the phase
(VmHWM, reset before each phase through /proc/PID/clear_refs) minus its RSS before.

    python bench/gateway_bench.py                  # 36,000 events, 200 clients
    python bench/gateway_bench.py --clients 50 --events 3000
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from compact_bench import ensure_log  # noqa: E402 -- bench/ holds scripts, not a package: importable only after the insert above

THREAD = "bench-thread"


async def load_thread(data_dir: Path, log: Path) -> tuple[int, int]:
    """Store the log as one thread; return (latest seq, bytes of final messages+state JSON)."""
    from agui_gateway.cli.logs import read_events
    from agui_gateway.protocol.compaction import SnapshotCompactor
    from agui_gateway.store import NewEvent
    from agui_gateway.store.file import FileStore

    store = FileStore(data_dir, fsync="never")
    await store.open()
    compactor = SnapshotCompactor()
    batch: list[NewEvent] = []
    run_id = None
    with log.open("rb") as handle:
        for event in read_events(handle):
            if event["type"] == "RUN_STARTED":
                run_id = event.get("runId")
            compactor.feed(event)
            batch.append(NewEvent(event=event, run_id=run_id, source="agent"))
            if len(batch) == 2000:
                await store.append(THREAD, batch)
                batch = []
    if batch:
        await store.append(THREAD, batch)
    latest = await store.last_seq(THREAD)
    await store.close()
    messages, state = compactor.snapshot()
    return latest, len(orjson.dumps({"messages": messages, "state": state}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


async def one_client(client: httpx.AsyncClient, url: str, marker: bytes) -> tuple[int, float]:
    """Read the stream until the frame with the latest id; return (body bytes, seconds)."""
    start = time.perf_counter()
    received = 0
    window = b""
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            received += len(chunk)
            window = window[-64:] + chunk
            if marker in window:
                break
    return received, time.perf_counter() - start


async def phase(pid: int, port: int, clients: int, query: str, latest: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/threads/{THREAD}/events{query}"
    marker = b":%d\n" % latest  # the end of the line "id: EPOCH:SEQ"
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(600.0)
    before = rss(pid, "VmRSS")
    peak_tracked = reset_peak(pid)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one_client(client, url, marker) for _ in range(clients)))
        wall = time.perf_counter() - start
    peak = rss(pid, "VmHWM") if peak_tracked else rss(pid, "VmRSS")
    sizes = [size for size, _ in results]
    return {
        "wall": wall,
        "slowest": max(seconds for _, seconds in results),
        "bytes_per_client": sum(sizes) / len(sizes),
        "added_mib": (peak - before) / 2**20,
    }


def wait_healthy(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the gateway exited during start-up")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit("the gateway did not become healthy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=36_000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--skip-naive", action="store_true", help="only the compacted replay")
    args = parser.parse_args()

    log = ensure_log(args.events)
    data_dir = Path(tempfile.mkdtemp(prefix="agui-bench-"))
    try:
        latest, floor = asyncio.run(load_thread(data_dir, log))
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agui_gateway.cli.main",
                "serve",
                "--data",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(port, proc, time.monotonic() + 30)
            print(f"thread: {latest:,} stored events; final messages+state JSON {floor:,} B")
            first = asyncio.run(phase(proc.pid, port, 1, "", latest))
            print(
                f"one fresh client (builds the checkpoint): {first['bytes_per_client']:,.0f} B "
                f"= {first['bytes_per_client'] / floor:.3f}x the final messages+state "
                f"(must be <= 1.2), {first['wall']:.2f} s"
            )
            fresh = asyncio.run(phase(proc.pid, port, args.clients, "", latest))
            print(
                f"{args.clients} clients, fresh replay: all done in {fresh['wall']:.2f} s "
                f"(slowest {fresh['slowest']:.2f} s; must be < 2 s), "
                f"{fresh['bytes_per_client']:,.0f} B each, gateway +{fresh['added_mib']:.1f} MiB "
                "(must be < 64 MiB)"
            )
            if not args.skip_naive:
                naive = asyncio.run(phase(proc.pid, port, args.clients, "?after=0", latest))
                print(
                    f"{args.clients} clients, naive raw replay: all done in {naive['wall']:.2f} s, "
                    f"{naive['bytes_per_client']:,.0f} B each, gateway +{naive['added_mib']:.1f} MiB"
                )
                print(
                    f"ratios naive / fresh: time {naive['wall'] / fresh['wall']:.1f}x, "
                    f"bytes {naive['bytes_per_client'] / fresh['bytes_per_client']:.1f}x, "
                    f"memory {naive['added_mib'] / max(fresh['added_mib'], 0.1):.1f}x"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
