"""Resource bounds as invariants, measured on a real gateway process.

* Every stream, log follower and file descriptor is released when its client goes
  away: hundreds of subscribers in every mode are opened, stalled mid-stream (they
  never read) and dropped; ``/proc/<pid>/fd`` and the ``subscribers`` metric
  return to their baseline.
* A stalled client costs at most a fixed number of bytes beyond one event, whatever
  the event sizes: multi-megabyte events and many non-reading clients.
* Beyond the stream cap (configured, or what ``RLIMIT_NOFILE`` leaves room for) a
  new stream gets 503 with ``Retry-After``, never a stream broken mid-way.
"""

from __future__ import annotations

import asyncio
import resource
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from support.agents import ScriptedAgent
from support.events import agent_run_events, run_input
from support.servers import GatewayProcess, serve_gateway
from support.sse import collect
from support.waiting import wait_until_async

from agui_gateway.server.config import GatewayConfig, parse_tokens
from agui_gateway.store.records import sequence_line

MiB = 1024 * 1024


def write_thread(data_dir: Path, thread_id: str, events: list[dict[str, Any]]) -> int:
    """A thread's log written as the file store writes it (before the gateway starts)."""
    directory = data_dir / "threads" / thread_id
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "log.jsonl", "wb") as log:
        for seq, event in enumerate(events, 1):
            unsequenced = orjson.dumps({"runId": "r1", "ts": 1, "source": "agent", "event": event})
            log.write(sequence_line(seq, unsequenced))
    return len(events)


def text_run(thread_id: str, deltas: int, delta_size: int) -> list[dict[str, Any]]:
    return (
        [
            {"type": "RUN_STARTED", "threadId": thread_id, "runId": "r1"},
            {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
        ]
        + [
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": f"{i:08d}" + "x" * delta_size}
            for i in range(deltas)
        ]
        + [
            {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
            {"type": "RUN_FINISHED", "threadId": thread_id, "runId": "r1"},
        ]
    )


def open_fds(gw: GatewayProcess) -> int:
    return gw.open_fds()


async def descriptors_back_to(gw: GatewayProcess, baseline: list[str], timeout: float = 30) -> None:
    """Waits until the gateway holds no more descriptors than it did at ``baseline``; a
    failure names the ones it holds beyond it."""
    try:
        await wait_until_async(lambda: open_fds(gw) <= len(baseline), timeout=timeout)
    except AssertionError as failure:
        extra = Counter(gw.descriptors()) - Counter(baseline)
        raise AssertionError(f"descriptors not back to their baseline; beyond it: {dict(extra)}") from failure


def metric(gw: GatewayProcess, name: str) -> float:
    return gw.metric(name)


def stalled(port: int, request: bytes) -> socket.socket:
    """A client that sends a request and never reads (small receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


def get(path: str, **headers: str) -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


def post(path: str, body: dict[str, Any], **headers: str) -> bytes:
    data = orjson.dumps(body)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\n{extra}\r\n"
    )
    return head.encode() + data


def connect_body(thread_id: str) -> dict[str, Any]:
    return {"threadId": thread_id, "runId": "c", "messages": [], "tools": [], "context": [], "state": {}}


@pytest.fixture
def big_thread(tmp_path: Path) -> Iterator[tuple[GatewayProcess, str, int]]:
    """A gateway on a thread of ~12 MB (more than loopback socket buffers hold)."""
    data_dir = tmp_path / "data"
    thread_id = "big"
    last = write_thread(data_dir, thread_id, text_run(thread_id, 6000, 2000))
    # Without the cyclic garbage collector: a stream must be released when its client
    # goes away, not whenever a collection happens to find it.
    with GatewayProcess(data_dir, {"scripted": "http://127.0.0.1:9/"}, gc=False) as gw:
        yield gw, thread_id, last


# Every kind of stream a client can open, each stalled mid-history.
MODES = {
    "raw-from-start": lambda t, last: get(f"/threads/{t}/events?after=0"),
    "resume-by-header": lambda t, last: get(f"/threads/{t}/events", **{"Last-Event-ID": "1"}),
    "resume-mid": lambda t, last: get(f"/threads/{t}/events?after={last // 2}"),
    "fresh": lambda t, last: get(f"/threads/{t}/events"),
    "connect-from-start": lambda t, last: post("/agents/scripted/connect", connect_body(t), **{"Last-Event-ID": "1"}),
    "log-jsonl": lambda t, last: get(f"/threads/{t}/log.jsonl"),
}


async def test_dropped_stalled_subscribers_release_every_descriptor(
    big_thread: tuple[GatewayProcess, str, int],
) -> None:
    gw, thread_id, last = big_thread
    # Warm up: open the thread (its replay state and checkpoint) with one full read.
    assert httpx.get(f"{gw.url}/threads/{thread_id}/snapshot", timeout=30).status_code == 200
    baseline = gw.descriptors()
    per_mode = 40  # 6 modes x 40 = 240 stalled clients per round
    streams = per_mode * (len(MODES) - 1)  # log.jsonl is not an event stream
    for _ in range(2):
        sockets = [stalled(gw.port, make(thread_id, last)) for make in MODES.values() for _ in range(per_mode)]
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") >= streams, timeout=60)
        # They are stalled mid-history: the catching-up ones hold their log open.
        stalled_fds = open_fds(gw)
        assert stalled_fds >= len(baseline) + len(sockets) + per_mode
        for sock in sockets:
            sock.close()
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 0, timeout=30)
        await descriptors_back_to(gw, baseline)
        print(f"\nfds: baseline {len(baseline)}, {len(sockets)} stalled clients {stalled_fds}, dropped {open_fds(gw)}")
    # And the gateway still serves the whole thread.
    with httpx.stream("GET", f"{gw.url}/threads/{thread_id}/log.jsonl", timeout=60) as response:
        assert (
            sum(len(chunk) for chunk in response.iter_bytes())
            == (gw.data_dir / "threads" / thread_id / "log.jsonl").stat().st_size
        )


async def test_stalled_clients_cost_one_event_at_most_whatever_its_size(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    thread_id = "huge"
    size = 8 * MiB
    blob = "b" * size
    events = [{"type": "RUN_STARTED", "threadId": thread_id, "runId": "r1"}]
    events += [{"type": "STATE_SNAPSHOT", "snapshot": {"i": i, "blob": blob}} for i in range(4)]
    events += [{"type": "RUN_FINISHED", "threadId": thread_id, "runId": "r1"}]
    write_thread(data_dir, thread_id, events)
    clients = 24
    # A fixed mmap threshold: every big buffer is its own mapping, returned to the OS when
    # freed, so resident memory shows the big buffers alive now, not the allocator's reuse
    # of what the warm-up freed.
    env = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}
    with GatewayProcess(data_dir, {}, env=env) as gw:
        assert httpx.get(f"{gw.url}/threads/{thread_id}/snapshot", timeout=60).status_code == 200
        baseline = gw.rss_bytes()
        sockets = [stalled(gw.port, get(f"/threads/{thread_id}/events?after=0")) for _ in range(clients)]
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") >= clients, timeout=60)
        # They are stalled inside the big events once the gateway holds about one each ...
        await wait_until_async(lambda: gw.rss_bytes() - baseline >= clients * size // 2, timeout=60)
        peak = 0
        for _ in range(20):  # ... and it must not hold more while they stay stalled
            peak = max(peak, gw.rss_bytes() - baseline)
            await asyncio.sleep(0.1)  # wait-ok: the sampling interval of a measurement
        # Each stalled client holds the event it is in the middle of (the block of the log
        # it was read from, sent as views of it): one event, never its 32 MB backlog.
        per_client = peak / clients
        print(
            f"\nRSS +{peak / MiB:.0f} MiB for {clients} stalled clients on {size // MiB} MiB events "
            f"({per_client / MiB:.1f} MiB each; backlog {4 * size // MiB} MiB each)"
        )
        assert per_client < 1.5 * size, f"{per_client / MiB:.1f} MiB per stalled client"
        for sock in sockets:
            sock.close()
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 0, timeout=30)


async def test_streams_beyond_the_cap_get_503_with_retry_after(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_thread(data_dir, "capped", text_run("capped", 10, 10))
    env = {"AGUI_GATEWAY_MAX_STREAMS": "5"}
    with GatewayProcess(data_dir, {}, env=env) as gw:
        sockets = [stalled(gw.port, get("/threads/capped/events")) for _ in range(5)]
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 5, timeout=30)
        refused = httpx.get(f"{gw.url}/threads/capped/events", timeout=10)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
        assert "too many" in refused.json()["error"]
        assert metric(gw, 'agui_gateway_streams_refused_total{cap="process"}') == 1
        assert httpx.get(f"{gw.url}/threads/capped/snapshot", timeout=10).status_code == 200  # not a stream
        sockets.pop().close()
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 4, timeout=30)
        with httpx.stream("GET", f"{gw.url}/threads/capped/events", timeout=10) as response:
            assert response.status_code == 200
        for sock in sockets:
            sock.close()


def _limit_nofile(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


async def test_near_descriptor_exhaustion_readers_get_503_not_a_broken_stream(tmp_path: Path) -> None:
    """``ulimit -n 256``: catching-up readers beyond what it leaves room for get a 503."""
    data_dir = tmp_path / "data"
    thread_id = "fds"
    last = write_thread(data_dir, thread_id, text_run(thread_id, 3000, 2000))
    gw = GatewayProcess(data_dir, {}, preexec=lambda: _limit_nofile(256))
    with gw:
        sockets: list[socket.socket] = []
        statuses: list[int] = []
        try:
            for _ in range(120):
                sockets.append(stalled(gw.port, get(f"/threads/{thread_id}/events?after=0")))
            # Each is a stream, a stream refused, or a connection refused at the connection cap
            # (server/http/connections.py: at once, or in place of a newer one).
            answers = (
                "agui_gateway_subscribers",
                'agui_gateway_streams_refused_total{cap="process"}',
                'agui_gateway_connections_closed_total{reason="refused"}',
                'agui_gateway_connections_closed_total{reason="replaced"}',
            )

            def all_answered() -> bool:
                page = httpx.get(gw.url + "/metrics", timeout=10)
                if page.status_code == 503:  # refused itself, while every connection is busy
                    return False
                return sum(gw.metric(name, page.text) for name in answers) >= len(sockets)

            accepted = await wait_until_async(all_answered, timeout=60)
            assert accepted
            assert metric(gw, 'agui_gateway_streams_refused_total{cap="process"}') > 0
            # Every refused one got a whole 503; every accepted one is a healthy stream.
            for sock in sockets:
                sock.settimeout(10)
                head = sock.recv(64)
                statuses.append(int(head.split(b" ", 2)[1]))
            assert set(statuses) == {200, 503}
        finally:
            for sock in sockets:
                sock.close()
        await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 0, timeout=30)
        # A reader afterwards gets the whole thread.
        frames = httpx.get(f"{gw.url}/threads/{thread_id}/log.jsonl", timeout=60).content.count(b"\n")
        assert frames == last
        assert "Too many open files" not in gw.log_path.read_text()


async def test_dropped_subscribers_of_a_live_run_release_every_descriptor(
    agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    """The issue's case: readers from the start of a thread whose run is still streaming,
    and the run's own caller, all stalled and then dropped while the run goes on."""
    scripted, agent_url = agent
    thread_id = "live"
    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}, gc=False) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
            scripted.script("warm", agent_run_events(thread_id, "warm"))
            await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, "warm"))
            baseline = gw.descriptors()
            events = text_run(thread_id, 20000, 500)
            for event in events:
                if "runId" in event:
                    event["runId"] = "live"
            script = scripted.script("live", events, hold_at=12000)
            caller = [stalled(gw.port, post("/agents/scripted/run", run_input(thread_id, "live")))]
            await wait_until_async(
                lambda: metric(gw, 'agui_gateway_events_stored_total{source="agent"}') > 8000, timeout=60
            )
            readers = [stalled(gw.port, get(f"/threads/{thread_id}/events?after=0")) for _ in range(150)]
            await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") >= 151, timeout=60)
            for sock in caller + readers:
                sock.close()
            await wait_until_async(lambda: metric(gw, "agui_gateway_subscribers") == 0, timeout=30)
            script.release()
            await wait_until_async(lambda: metric(gw, "agui_gateway_runs_active") == 0, timeout=60)
            await descriptors_back_to(gw, baseline)
            # The run went on without its caller: every event is stored.
            log = await client.get(f"/threads/{thread_id}/log.jsonl")
            assert orjson.loads(log.content.splitlines()[-1])["event"]["type"] == "RUN_FINISHED"


async def test_each_token_has_its_own_stream_cap(tmp_path: Path) -> None:
    config = GatewayConfig(
        data_dir=tmp_path / "data",
        tokens=parse_tokens("token-one-1234:read:* token-two-1234:read:*"),
        max_streams_per_token=2,
    )
    one = {"authorization": "Bearer token-one-1234"}
    two = {"authorization": "Bearer token-two-1234"}
    with serve_gateway(config) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10, limits=httpx.Limits(max_connections=None)) as client:
            async with (
                client.stream("GET", "/threads/t/events", headers=one) as first,
                client.stream("GET", "/threads/t/events", headers=one) as second,
            ):
                assert first.status_code == second.status_code == 200
                refused = await client.get("/threads/t/events", headers=one)
                assert refused.status_code == 503 and refused.headers["retry-after"]
                assert "token cap" in refused.json()["error"]
                async with client.stream("GET", "/threads/t/events", headers=two) as other:
                    assert other.status_code == 200
            # Closed streams give their slots back.
            await wait_until_async(lambda: gw.gateway.streams.open == 0, timeout=10)
            async with client.stream("GET", "/threads/t/events", headers=one) as again:
                assert again.status_code == 200
