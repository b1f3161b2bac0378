"""The gateway as a child process: stalled clients, and SIGKILL at random moments.

* A client that stops reading never makes the gateway drop an event for it,
  and the gateway's memory does not grow with that client's backlog.
* Killed with SIGKILL during appends, right at a run's end (the checkpoint
  write) or during replays, and restarted: every event any client received is
  stored at its sequence number, no line is torn, a client resuming with its
  last id continues exactly, and the run the crash cut off is closed by a
  stored RUN_ERROR so the thread takes runs again.
"""

from __future__ import annotations

import asyncio
import random
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from support.agents import ScriptedAgent
from support.events import agent_run_events, read_log, run_input, served, user_message
from support.official_client import OfficialClient, assert_same_end
from support.servers import GatewayProcess
from support.sse import Frame, SseReader, collect, events_of, has_id, last_id
from support.waiting import wait_until_async

from agui_gateway.protocol.compaction import SnapshotCompactor
from agui_gateway.store.base import ThreadStore
from agui_gateway.store.file import FileStore
from agui_gateway.store.file.checkpoint import read_checkpoint
from agui_gateway.store.redis import RedisStore

MiB = 1024 * 1024


def state_run(thread_id: str, run_id: str, snapshots: int, size: int) -> list[dict[str, Any]]:
    """A run of big STATE_SNAPSHOTs: lots of bytes in the log, a small thread state.

    Each snapshot replaces the last, so the gateway's replay state stays at one
    snapshot's size however many bytes the log holds: memory growth measured
    around it is the gateway's own, not the thread's.
    """
    blob = "s" * size
    return (
        [{"type": "RUN_STARTED", "threadId": thread_id, "runId": run_id}]
        + [{"type": "STATE_SNAPSHOT", "snapshot": {"run": run_id, "i": i, "blob": blob}} for i in range(snapshots)]
        + [{"type": "RUN_FINISHED", "threadId": thread_id, "runId": run_id}]
    )


def stalled_client(port: int, path: str) -> socket.socket:
    """A client that sends its request and then never reads (tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    return sock


def drain_stalled(sock: socket.socket, until_id: int, timeout: float = 60.0) -> list[Frame]:
    """Read what the stalled client was sent (chunked HTTP body, SSE frames) up to an id."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    _, body = data.split(b"\r\n\r\n", 1)
    reader, frames, raw = SseReader(), [], body
    pending = b""
    while True:
        pending += raw
        # De-chunk what is complete.
        while True:
            size_end = pending.find(b"\r\n")
            if size_end < 0:
                break
            size = int(pending[:size_end], 16)
            if len(pending) < size_end + 2 + size + 2:
                break
            frames.extend(reader.feed(pending[size_end + 2 : size_end + 2 + size]))
            pending = pending[size_end + 2 + size + 2 :]
        if any(f.id is not None and f.id >= until_id for f in frames):
            return frames
        raw = sock.recv(1 << 20)
        if not raw:
            raise AssertionError("stalled client's stream ended early")


async def test_a_stalled_client_loses_nothing_and_costs_no_memory(
    agent: tuple[ScriptedAgent, str], tmp_path: Path
) -> None:
    scripted, agent_url = agent
    thread_id = "stall"
    per_run, size = 16, 64 * 1024

    async def runs(client: httpx.AsyncClient, prefix: str, count: int) -> list[Frame]:
        frames: list[Frame] = []
        for i in range(count):
            scripted.script(f"{prefix}{i}", state_run(thread_id, f"{prefix}{i}", per_run, size))
            frames += await collect(client, "POST", "/agents/scripted/run", json=run_input(thread_id, f"{prefix}{i}"))
        return frames

    with GatewayProcess(tmp_path / "data", {"scripted": agent_url}) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=120) as client:
            # Warm up (imports, allocator pools) with the same kind of runs.
            await runs(client, "warm", 8)
            warm_seq = len(read_log(tmp_path / "data", thread_id))
            baseline = gw.rss_bytes()
            stalled = [
                stalled_client(gw.port, f"/threads/{thread_id}/events?after={warm_seq}"),
                stalled_client(gw.port, f"/threads/{thread_id}/events"),
            ]
            await wait_until_async(
                lambda: b"agui_gateway_subscribers 2.0" in httpx.get(gw.url + "/metrics").content, timeout=10
            )
            count = 40  # 40 runs x 16 x 64 KiB = 40 MiB that the stalled clients do not read
            live = await runs(client, "big", count)
            latest = warm_seq + count * (per_run + 2)
            # Other clients keep being served in full while the stalled ones hold their sockets.
            other = await collect(
                client, "GET", f"/threads/{thread_id}/events", params={"after": str(warm_seq)}, until=has_id(latest)
            )
            assert events_of(other) == events_of(live)
            grown = gw.rss_bytes() - baseline
            backlog = count * per_run * size
            assert grown < 16 * MiB, f"memory grew by {grown / MiB:.1f} MiB for a {backlog / MiB:.0f} MiB backlog"
            # Nothing was dropped for the stalled clients: they get every event once they read.
            stored = read_log(tmp_path / "data", thread_id)
            assert stored[-1]["seq"] == latest
            frames = drain_stalled(stalled[0], latest)
            got = [(f.id, f.event) for f in frames if f.event is not None]
            assert got == [(r["seq"], served(r)) for r in stored[warm_seq:]]
            tail = drain_stalled(stalled[1], latest)
            assert [f.id for f in tail if f.event is not None][-1] == latest
            for sock in stalled:
                sock.close()


# ------------------------------------------------------------------------------ SIGKILL


@dataclass
class _Stream:
    """What one client of a round received before the kill: its status, then its frames."""

    frames: list[Frame] = field(default_factory=list)
    status: int | None = None  # the answer's status, once its head arrived


async def _read(stream: _Stream, response: httpx.Response) -> None:
    """Record complete frames until the connection breaks (the gateway is killed)."""
    stream.status = response.status_code
    if response.status_code != 200:
        stream.frames.append(Frame(None, None, f"HTTP {response.status_code}: {(await response.aread())[:300]!r}"))
        return
    reader = SseReader()
    try:
        async for chunk in response.aiter_bytes():
            stream.frames.extend(reader.feed(chunk))
    except (httpx.HTTPError, ConnectionError):
        pass  # the kill: what arrived before it is what the checks look at


async def _watch(client: httpx.AsyncClient, url: str, stream: _Stream, **kwargs: Any) -> None:
    async with client.stream("GET", url, **kwargs) as response:
        await _read(stream, response)


def _answered(stream: _Stream) -> bool:
    """The stream's answer began: an error status, or 200 with an event carrying an id."""
    return stream.status is not None and (stream.status != 200 or (last_id(stream.frames) or 0) > 0)


class _Store:
    """Where a killed gateway kept its data: the file store's directory or a Redis prefix."""

    def __init__(self, kind: str, data_dir: Path, redis_prefix: str | None, redis_url: str | None = None) -> None:
        self.kind = kind
        self.data_dir = data_dir
        self.prefix = redis_prefix
        self.redis_url = redis_url

    def env(self) -> dict[str, str]:
        if self.kind == "file":
            return {}
        assert self.prefix is not None and self.redis_url is not None
        # A restarted gateway is a new replica: a run of the killed one holds the thread
        # until its lease lapses (then the sweep closes it), so the lease is short here.
        return {
            "AGUI_GATEWAY_REDIS_URL": self.redis_url,
            "AGUI_GATEWAY_REDIS_PREFIX": self.prefix,
            "AGUI_GATEWAY_LEASE_TTL": str(CRASH_LEASE_TTL_S),
        }

    def open(self) -> ThreadStore:
        if self.kind == "file":
            return FileStore(self.data_dir)
        assert self.prefix is not None and self.redis_url is not None
        return RedisStore(self.redis_url, prefix=self.prefix)

    async def stored_lines(self, thread_id: str) -> list[bytes]:
        """The thread's stored lines exactly as stored (read straight from the storage)."""
        if self.kind == "file":
            path = self.data_dir / "threads" / thread_id / "log.jsonl"
            if not path.exists():
                return []
            data = path.read_bytes()
            assert data == b"" or data.endswith(b"\n"), "the log ends with a complete line"
            return data.split(b"\n")[:-1]
        store = self.open()
        await store.open()
        try:
            return b"".join([bytes(piece) async for piece in store.read_lines(thread_id)]).split(b"\n")[:-1]
        finally:
            await store.close()

    async def records(self, thread_id: str) -> list[dict[str, Any]]:
        """Every stored line is a complete record, seqs dense from 1; returns the records."""
        records = [orjson.loads(line) for line in await self.stored_lines(thread_id)]  # nothing torn
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        return records

    async def checkpoint(self, thread_id: str) -> tuple[int, bytes] | None:
        """The stored checkpoint, read without opening the thread (the gateway may be running)."""
        if self.kind == "file":
            checkpoint = read_checkpoint(self.data_dir / "threads" / thread_id)  # CorruptCheckpoint if torn
        else:
            store = self.open()
            await store.open()
            try:
                checkpoint = await store.load_checkpoint(thread_id)
            finally:
                await store.close()
        return None if checkpoint is None else (checkpoint.seq, checkpoint.data)


CRASH_LEASE_TTL_S = 1.0
MOMENTS = ("append", "run_end", "replay")
THREAD_KILLS = 5


@pytest.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
async def crash_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[_Store]:
    if request.param == "file":
        yield _Store("file", tmp_path / "data", None)
        return
    redis_url = request.getfixturevalue("redis_url")  # the URL scripts/test.sh exports
    client = aioredis.from_url(redis_url)
    prefix = f"agui-crash-{uuid.uuid4().hex}"
    try:
        yield _Store("redis", tmp_path / "data", prefix, redis_url)
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_sigkill_and_restart(
    agent: tuple[ScriptedAgent, str], crash_store: _Store, official_client: OfficialClient
) -> None:
    """5 kills (appends, a checkpoint write, replays, in turn) on each store."""
    await _sigkill_rounds(agent, crash_store, official_client, kills=5, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_sigkill_and_restart_many_rounds(
    agent: tuple[ScriptedAgent, str], crash_store: _Store, official_client: OfficialClient
) -> None:
    """50 kills on each store."""
    await _sigkill_rounds(agent, crash_store, official_client, kills=50, seed=random.randrange(2**32))


@dataclass
class _Seen:
    """What the clients of one round received before the kill."""

    raw: list[_Stream] = field(default_factory=list)  # ?after= streams and the run's caller
    fresh: list[_Stream] = field(default_factory=list)  # fresh (compacted) replays


async def _sigkill_rounds(
    agent: tuple[ScriptedAgent, str], store: _Store, official_client: OfficialClient, *, kills: int, seed: int
) -> None:
    scripted, agent_url = agent
    rng = random.Random(seed)
    gw = GatewayProcess(store.data_dir, {"scripted": agent_url}, env=store.env())
    gw.start()
    try:
        for round_no in range(kills):
            # A new thread every few kills keeps each round's cost (and the official
            # client's replay of the whole log) bounded however many kills there are.
            thread_id = f"crash-{store.kind}-{round_no // THREAD_KILLS}"
            moment = MOMENTS[round_no % len(MOMENTS)]
            run_id = f"{moment}-{seed}-{round_no}"
            # Big messages make checkpoint writes and replays take a while to hit.
            events = agent_run_events(thread_id, run_id, text_deltas=150, tools=3)
            for e in events:
                if e["type"] == "TEXT_MESSAGE_CONTENT":
                    e["delta"] += "y" * 2000
            scripted.script(run_id, events, pace_s=0.001)
            old_checkpoint = await store.checkpoint(thread_id) if round_no else None
            seen = await _run_and_kill(gw, store, thread_id, run_id, len(events), moment, rng)
            await _check_killed(store, thread_id, old_checkpoint, f"seed {seed} round {round_no} ({moment})")
            gw.start()  # restart on the same store
            await _check_restarted(gw, scripted, store, official_client, thread_id, run_id, seen)
    finally:
        gw.kill()


async def _check_killed(store: _Store, thread_id: str, old: tuple[int, bytes] | None, where: str) -> None:
    """Straight after the kill: no torn line, and the checkpoint is the old one or a whole new one."""
    records = await store.records(thread_id)
    checkpoint = await store.checkpoint(thread_id)
    if checkpoint is None or checkpoint == old:
        return
    seq, data = checkpoint
    compactor = SnapshotCompactor.loads(data)  # whole: it loads
    run_ends = {r["seq"] for r in records if r["event"]["type"] in ("RUN_FINISHED", "RUN_ERROR")}
    assert compactor.folded_seq == seq and seq in run_ends, f"{where}: checkpoint at {seq} is not a run's end"


async def _run_and_kill(
    gw: GatewayProcess, store: _Store, thread_id: str, run_id: str, total: int, moment: str, rng: random.Random
) -> _Seen:
    """Start a run watched by several clients; SIGKILL the gateway at the chosen moment."""
    before = len(await store.stored_lines(thread_id))
    seen = _Seen(raw=[_Stream(), _Stream(), _Stream()], fresh=[_Stream()])
    path = f"/threads/{thread_id}/events"
    async with httpx.AsyncClient(base_url=gw.url, timeout=60, limits=httpx.Limits(max_connections=None)) as client:
        tasks = [
            asyncio.ensure_future(_watch(client, path, seen.raw[0], params={"after": str(before)})),
            asyncio.ensure_future(_watch(client, path, seen.raw[1], params={"after": "0"})),
            asyncio.ensure_future(_post_run(client, thread_id, run_id, seen.raw[2])),
            asyncio.ensure_future(_watch(client, path, seen.fresh[0])),
        ]
        watched = seen.raw[0].frames
        # At a run's end the checkpoint is written, right after the run's last event.
        target = before + (total if moment == "run_end" else rng.randint(1, total - 1))
        # Every client was answered (and got an event with an id) before the kill, so
        # none of the checks after the restart looks at a stream that never started.
        streams = [*seen.raw, *seen.fresh]
        await wait_until_async(lambda: all(map(_answered, streams)) and (last_id(watched) or 0) >= target, timeout=30)
        if moment == "replay":
            replayers = [_Stream() for _ in range(8)]
            tasks += [asyncio.ensure_future(_watch(client, path, stream)) for stream in replayers]
            seen.fresh += replayers
            # Killed with every replay answered and at least one under way.
            await wait_until_async(
                lambda: all(r.status is not None for r in replayers) and any(r.frames for r in replayers), timeout=30
            )
        gw.kill()
        await asyncio.gather(*tasks)
    return seen


async def _check_restarted(
    gw: GatewayProcess,
    scripted: ScriptedAgent,
    store: _Store,
    official_client: OfficialClient,
    thread_id: str,
    run_id: str,
    seen: _Seen,
) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:
        # Resuming with the last id seen continues exactly (opening the thread also
        # repairs it and closes the run the crash cut off).
        resume_from = last_id(seen.raw[0].frames) or 0
        resumed = await collect(
            client,
            "POST",
            "/agents/scripted/connect",
            json=run_input(thread_id, "c"),
            headers={"last-event-id": str(resume_from)},
        )
        records = await store.records(thread_id)
        raw = [served(r) for r in records]
        assert events_of(resumed) == raw[resume_from:]
        # Every stream was answered 200 before the kill, and every frame of a raw or live
        # stream with id N is the stored record N.
        for stream in [*seen.raw, *seen.fresh]:
            assert stream.status == 200, f"a client was answered {stream.frames[-1:]}"
        for stream in seen.raw:
            assert (last_id(stream.frames) or 0) > 0, "a raw stream received no event before the kill"
            for frame in stream.frames:
                if frame.event is not None:
                    assert raw[frame.id - 1] == frame.event, f"frame {frame.id} differs from the stored record"
        if raw[-1]["type"] == "RUN_ERROR":
            assert records[-1]["source"] == "gateway" and raw[-1]["code"] == "gateway_restarted"
        else:
            assert raw[-1]["type"] == "RUN_FINISHED"
        # Under the official client, a fresh replay now ends where the stored log does ...
        fresh = events_of(await collect(client, "POST", "/agents/scripted/connect", json=run_input(thread_id, "c")))
        cut_at = [_held(stream.frames) for stream in seen.fresh]
        reference = official_client.replay(raw, sample_after=[n for _, n in filter(None, cut_at)])
        assert_same_end("a fresh replay after the restart", official_client.replay(fresh), reference)
        # ... and a fresh client of before the kill holding everything up to its last id N
        # holds what the client holds after the log's first N events (mid-stream, both).
        assert cut_at[0] is not None, "the first fresh client received no id before the kill"
        for stream, cut in zip(seen.fresh, cut_at, strict=True):
            taken = events_of(stream.frames)
            if cut is None:
                # No id yet (a replay cut inside its compacted block): per the id rule the client
                # holds nothing it can resume from and starts over with a fresh replay.
                assert_same_end(
                    "a cut fresh replay, started over", official_client.replay(taken, then=[fresh]), reference
                )
                continue
            held, n = cut
            got = official_client.replay(taken, sample_after=[held])
            assert got.error is None, f"the official client rejected a fresh stream cut by the kill: {got.error}"
            assert got.samples[held] == reference.samples[n], f"a fresh client holding id {n} differs from the log"
        # The thread takes runs again (on Redis once the killed replica's lease lapsed).
        check = f"{run_id}-after"
        scripted.script(check, agent_run_events(thread_id, check, tools=0))
        if store.kind == "redis":
            await wait_until_async(lambda: _lease_gone(store, thread_id), timeout=CRASH_LEASE_TTL_S * 10)
        # A recovery may hold the lease now (the sweep's): the start waits for it, no 409.
        after = await client.post("/agents/scripted/run", json=run_input(thread_id, check))
        assert after.status_code == 200, after.text
        assert events_of(SseReader().feed(after.content))[-1]["type"] == "RUN_FINISHED"


def _held(frames: list[Frame]) -> tuple[int, int] | None:
    """(events taken in, the id they end at) for the last event frame with an id, if any."""
    events, last = 0, None
    for frame in frames:
        if frame.event is not None:
            events += 1
            if frame.id is not None:
                last = (events, frame.id)
    return last


async def _lease_gone(store: _Store, thread_id: str) -> bool:
    client = aioredis.from_url(store.redis_url)
    try:
        return not await client.exists(f"{store.prefix}:{{{thread_id}}}:lease")
    finally:
        await client.aclose()


async def _post_run(client: httpx.AsyncClient, thread_id: str, run_id: str, stream: _Stream) -> None:
    body = run_input(thread_id, run_id, [user_message(f"{run_id}-u", f"question of {run_id}")])
    async with client.stream("POST", "/agents/scripted/run", json=body) as response:
        await _read(stream, response)
