"""Benchmark of the data lifecycle (issue 17): retention on Redis, a sweep over the file
store, export and import throughput. Every figure is printed beside its baseline, run
side by side in the same script.

1. Redis memory: ``--redis-threads`` threads (default 10,000) of which ``--active``
   (default 1,000) had activity within the retention window. Baseline: the same threads
   in a store without retention (all kept). Measured: a store with retention after one
   sweep pass (``idle_threads`` pages + ``delete_thread``). Memory is the sum of
   ``MEMORY USAGE`` over each store's keys (its prefix only, so other keys on the same
   Redis do not count), and ``used_memory`` before and after for information.
2. File store sweep: ``--file-threads`` threads (default 100,000; 10% active). One
   sweep pass that only looks (pages of ``--page``), then one that deletes the idle
   ones; time and I/O (``/proc/self/io``: syscalls and bytes). Baseline: the full
   listing a sweep without the primitive would need (``list_threads``, every thread's
   info) over the same directory, from a fresh store.
3. Export and import: ``--export-threads`` threads of the testkit's realistic shape;
   events per second of ``export`` (to memory), of ``import`` into a new file store and
   into Redis, against the raw read of the same threads' ``log.jsonl`` files (bytes
   read and split into lines).

    python bench/lifecycle_bench.py                                    # the issue's sizes
    python bench/lifecycle_bench.py --redis-threads 200 --active 20 --file-threads 2000 --export-threads 10

Threads in the file store and the idle threads on Redis are written as stored records
with an old ``ts`` (through ``import_thread``, which keeps it), so no clock is waited on.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 86_400_000


def _thread_events(thread: str, index: int, turns: int) -> list[dict[str, Any]]:
    run = f"r-{index}"
    events: list[dict[str, Any]] = [{"type": "RUN_STARTED", "threadId": thread, "runId": run}]
    for turn in range(turns):
        msg = f"m-{index}-{turn}"
        events.append({"type": "TEXT_MESSAGE_START", "messageId": msg, "role": "assistant"})
        events.extend({"type": "TEXT_MESSAGE_CONTENT", "messageId": msg, "delta": f"word{i} "} for i in range(8))
        events.append({"type": "TEXT_MESSAGE_END", "messageId": msg})
    events.append({"type": "RUN_FINISHED", "threadId": thread, "runId": run})
    return events


def _lines(events: list[dict[str, Any]], run_id: str, ts: int) -> list[bytes]:
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.records import encode_unsequenced, sequence_line

    return [sequence_line(seq, encode_unsequenced(NewEvent(e, run_id), ts)) for seq, e in enumerate(events, 1)]


async def _put(store: Any, thread: str, lines: list[bytes]) -> None:
    from agui_gateway.store.base import new_epoch

    importing = store.import_thread(thread, new_epoch())
    await importing.add(lines)
    await importing.commit()


async def _sweep(store: Any, before_ms: int, page: int, delete: bool) -> tuple[int, int, int]:
    """One pass: (rounds, candidates, deleted)."""
    rounds = candidates = deleted = 0
    cursor = None
    while True:
        found = await store.idle_threads(before_ms, limit=page, cursor=cursor)
        rounds += 1
        candidates += len(found.threads)
        if delete:
            for idle in found.threads:
                deleted += await store.delete_thread(idle.thread_id, idle_before_ms=before_ms) == "deleted"
        cursor = found.next
        if cursor is None:
            return rounds, candidates, deleted


def _io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


@contextmanager
def _measured(out: dict[str, float]) -> Iterator[None]:
    before, started = _io(), time.perf_counter()
    yield
    out["s"] = time.perf_counter() - started
    after = _io()
    for key in ("syscr", "syscw", "rchar", "wchar"):
        if key in after:
            out[key] = after[key] - before.get(key, 0)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}x" if b else "n/a"


# -- 1. Redis memory with retention ------------------------------------------------------


async def _prefix_memory(client: Any, prefix: str) -> tuple[int, int]:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    total = 0
    for start in range(0, len(keys), 500):
        async with client.pipeline(transaction=False) as pipe:
            for key in keys[start : start + 500]:
                pipe.memory_usage(key, samples=0)
            total += sum(v or 0 for v in await pipe.execute())
    return total, len(keys)


async def bench_redis(url: str, threads: int, active: int, page: int) -> None:
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.redis import RedisStore
    from agui_gateway.store.redis.connect import connect

    retention_s = 7 * 86_400.0
    now = time.time_ns() // 1_000_000
    old = now - 30 * DAY_MS  # far outside the window
    prefixes = {"plain": f"bench-plain-{uuid.uuid4().hex[:8]}", "retention": f"bench-ret-{uuid.uuid4().hex[:8]}"}
    client = await connect(url)
    stores = {
        "plain": RedisStore(url, prefix=prefixes["plain"]),
        "retention": RedisStore(url, prefix=prefixes["retention"], retention_s=retention_s),
    }
    try:
        used_before = (await client.info("memory"))["used_memory"]
        for store in stores.values():
            await store.open()
            for index in range(threads):
                thread = f"thread-{index:06d}"
                events = _thread_events(thread, index, 2)
                if index < active:  # active within the window: appended now
                    await store.append(thread, [NewEvent(e, f"r-{index}") for e in events])
                else:
                    await _put(store, thread, _lines(events, f"r-{index}", old))
        used_filled = (await client.info("memory"))["used_memory"]
        sweep: dict[str, float] = {}
        with _measured(sweep):
            rounds, candidates, deleted = await _sweep(stores["retention"], now - int(retention_s * 1000), page, True)
        plain_bytes, plain_keys = await _prefix_memory(client, prefixes["plain"])
        kept_bytes, kept_keys = await _prefix_memory(client, prefixes["retention"])
        used_after = (await client.info("memory"))["used_memory"]
        print(f"\n1. Redis memory: {threads} threads, {active} active within the retention window")
        print(f"   without retention (baseline): {plain_bytes / 1e6:8.2f} MB in {plain_keys} keys")
        print(f"   with retention, after a sweep: {kept_bytes / 1e6:8.2f} MB in {kept_keys} keys")
        print(f"   ratio: {_ratio(kept_bytes, plain_bytes)} (the active share: {active / threads:.3f})")
        print(
            f"   the sweep: {rounds} rounds of {page}, {candidates} candidates, {deleted} deleted, "
            f"{sweep['s']:.2f} s ({deleted / sweep['s']:.0f} deletes/s)"
        )
        print(
            f"   used_memory (whole server, for information): {used_before / 1e6:.1f} MB before, "
            f"{used_filled / 1e6:.1f} MB filled, {used_after / 1e6:.1f} MB after the sweep"
        )
    finally:
        for name, store in stores.items():
            await store.close()
            keys = [key async for key in client.scan_iter(match=f"{prefixes[name]}:*", count=1000)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        await client.aclose()


# -- 2. A sweep over the file store --------------------------------------------------------


def _fill_files(data_dir: Path, threads: int, active_every: int) -> int:
    """Thread folders as the store writes them (log, epoch), idle ones with an old mtime,
    and the open-run index naming none (without one, the first open scans every log);
    returns the cutoff between idle and active."""
    from agui_gateway.store.base import new_epoch
    from agui_gateway.store.file.run_index import write_index

    now = time.time_ns() // 1_000_000
    old = now - 30 * DAY_MS
    root = data_dir / "threads"
    root.mkdir(parents=True)
    for index in range(threads):
        thread = f"thread-{index:06d}"
        ts = now if index % active_every == 0 else old
        directory = root / thread
        directory.mkdir()
        log = directory / "log.jsonl"
        log.write_bytes(b"".join(_lines(_thread_events(thread, index, 1), f"r-{index}", ts)))
        (directory / "epoch").write_text(new_epoch() + "\n")
        os.utime(log, ns=(ts * 1_000_000, ts * 1_000_000))
    write_index(data_dir, [], durable=False)
    return now - DAY_MS


async def bench_file_sweep(threads: int, page: int, tmp: Path) -> None:
    from agui_gateway.store.file import FileStore

    data_dir = tmp / "sweep"
    started = time.perf_counter()
    cutoff = _fill_files(data_dir, threads, 10)
    print(f"\n2. File store sweep over {threads} threads (10% active), pages of {page}")
    print(f"   (filled in {time.perf_counter() - started:.1f} s)")
    results: dict[str, dict[str, float]] = {"listing": {}, "look": {}, "delete": {}}
    store = FileStore(data_dir, fsync="always")
    await store.open()
    with _measured(results["listing"]):
        listed = await store.list_threads()
        idle_listed = sum(1 for info in listed if (info.last_activity_ms or 0) < cutoff)
    await store.close()
    store = FileStore(data_dir, fsync="always")
    await store.open()
    with _measured(results["look"]):
        rounds, candidates, _ = await _sweep(store, cutoff, page, False)
    with _measured(results["delete"]):
        _, _, deleted = await _sweep(store, cutoff, page, True)
    await store.close()
    assert candidates == idle_listed == deleted, (candidates, idle_listed, deleted)
    base = results["listing"]
    print(f"   {'':34} {'time':>9} {'read syscalls':>14} {'read bytes':>12} {'write bytes':>12}")
    for name, label in (
        ("listing", "baseline: list_threads (all info)"),
        ("look", f"sweep pass, looking ({rounds} rounds)"),
        ("delete", f"sweep pass, deleting {deleted}"),
    ):
        r = results[name]
        io_figures = f"{r.get('syscr', 0):14.0f} {r.get('rchar', 0):12.0f} {r.get('wchar', 0):12.0f}"
        print(f"   {label:34} {r['s']:8.2f}s {io_figures}")
    look = results["look"]
    syscalls = _ratio(look.get("syscr", 0), base.get("syscr", 0))
    read = _ratio(look.get("rchar", 0), base.get("rchar", 0))
    print(f"   looking / baseline: time {_ratio(look['s'], base['s'])}, read syscalls {syscalls}, read bytes {read}")
    per_round = look["s"] / rounds
    print(f"   one round (≤ {page} threads looked at): {per_round * 1000:.1f} ms on average")


# -- 3. Export and import throughput ---------------------------------------------------------


async def bench_moves(url: str | None, threads: int, tmp: Path) -> None:
    from agui_gateway.store.archive import export_threads, import_archive
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.file import FileStore
    from agui_gateway.store.redis import RedisStore
    from agui_testkit import generate_log, realistic_coding_agent

    source_dir = tmp / "moves"
    source = FileStore(source_dir, fsync="never")
    await source.open()
    events_total = 0
    shape = realistic_coding_agent(3_000)
    for index in range(threads):
        thread = f"thread-{index:04d}"
        events = generate_log(shape.but(thread_id=thread), index)
        for start in range(0, len(events), 500):
            await source.append(thread, [NewEvent(e, "run") for e in events[start : start + 500]])
        events_total += len(events)
    await source.close()

    timings: dict[str, float] = {}
    started = time.perf_counter()
    raw_bytes = 0
    lines = 0
    for path in sorted((source_dir / "threads").glob("*/log.jsonl")):
        data = path.read_bytes()
        raw_bytes += len(data)
        lines += len(data.splitlines())
    timings["raw read"] = time.perf_counter() - started
    assert lines == events_total

    source = FileStore(source_dir)
    await source.open()
    archive = io.BytesIO()
    started = time.perf_counter()
    await export_threads(source, None, archive)
    timings["export (file store)"] = time.perf_counter() - started
    await source.close()

    target = FileStore(tmp / "imported", fsync="always")
    await target.open()
    archive.seek(0)
    started = time.perf_counter()
    await import_archive(target, archive)
    timings["import (file store, fsync)"] = time.perf_counter() - started
    await target.close()

    if url is not None:
        prefix = f"bench-move-{uuid.uuid4().hex[:8]}"
        redis = RedisStore(url, prefix=prefix)
        await redis.open()
        try:
            archive.seek(0)
            started = time.perf_counter()
            await import_archive(redis, archive)
            timings["import (Redis)"] = time.perf_counter() - started
            started = time.perf_counter()
            await export_threads(redis, None, io.BytesIO())
            timings["export (Redis)"] = time.perf_counter() - started
            for thread in [info.thread_id for info in await redis.list_threads()]:
                await redis.delete_thread(thread, even_if_leased=True)
        finally:
            await redis.close()

    print(f"\n3. Export and import: {threads} threads, {events_total} events, {raw_bytes / 1e6:.1f} MB")
    base = events_total / timings["raw read"]
    for name, took in timings.items():
        rate = events_total / took
        print(f"   {name:28} {took:7.2f} s {rate:12,.0f} events/s   {_ratio(rate, base)} of the raw read")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("AGUI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis figures")
    parser.add_argument("--redis-threads", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=1_000)
    parser.add_argument("--file-threads", type=int, default=100_000)
    parser.add_argument("--export-threads", type=int, default=50)
    parser.add_argument("--page", type=int, default=256, help="threads per sweep round")
    args = parser.parse_args()
    url = None if args.no_redis else args.redis
    tmp = Path(tempfile.mkdtemp(prefix="lifecycle-bench-"))
    try:
        if url is not None:
            await bench_redis(url, args.redis_threads, args.active, args.page)
        await bench_file_sweep(args.file_threads, args.page, tmp)
        await bench_moves(url, args.export_threads, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
