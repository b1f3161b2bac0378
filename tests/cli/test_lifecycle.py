"""``agui-gateway threads delete``, ``export`` and ``import``, run as real processes against
real stores: the file store, a Redis and a local 3-node Redis Cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.redis_fixtures import delete_prefix
from support.thread_sets import served_streams, store_thread_set

from agui_gateway.store.base import Checkpoint, NewEvent, ThreadStore
from agui_gateway.store.file import FileStore
from agui_gateway.store.redis import RedisStore

CLI = [sys.executable, "-m", "agui_gateway"]


async def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return await asyncio.to_thread(
        subprocess.run, [*CLI, *args], input=stdin, capture_output=True, timeout=300, check=False
    )


@asynccontextmanager
async def opened(store: ThreadStore) -> AsyncIterator[ThreadStore]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def snapshot_of(store: ThreadStore) -> dict[str, Any]:
    """Everything the store holds of its threads, as stored."""
    out: dict[str, Any] = {}
    for info in sorted(await store.list_threads(), key=lambda i: i.thread_id):
        out[info.thread_id] = {
            "lines": [line async for line in store.read_lines(info.thread_id)],
            "head": await store.head(info.thread_id),
            "checkpoint": await store.load_checkpoint(info.thread_id),
            "info": (info.events, info.bytes, info.last_activity_ms),
        }
    return out


def redis_args(url: str, prefix: str) -> list[str]:
    return ["--store", url, "--redis-prefix", prefix]


@pytest.mark.redis
async def test_threads_move_from_the_file_store_to_redis_and_a_cluster_and_back_unchanged(
    tmp_path: Path, redis_url: str, redis_cluster_url: str, official_client: Any
) -> None:
    source_dir = tmp_path / "source"
    async with opened(FileStore(source_dir)) as source:
        thread_ids = await store_thread_set(source)
        await source.save_checkpoint("errors", Checkpoint(5, b"\x00opaque\n"))
        original = await snapshot_of(source)
        streams = {t: await served_streams(source, t) for t in thread_ids}
    assert set(original) == set(thread_ids)
    records = [orjson.loads(line) for thread in original.values() for line in thread["lines"]]
    assert any(r.get("gateway", {}).get("branch") for r in records)  # branches,
    assert any((r["event"].get("outcome") or {}).get("type") == "interrupt" for r in records)  # interrupts,
    assert any(r["event"]["type"] == "RUN_ERROR" for r in records)  # and errors
    exported = await run_cli("export", "--data", str(source_dir))
    assert exported.returncode == 0, exported.stderr.decode()
    archive = tmp_path / "archive.jsonl"
    archive.write_bytes(exported.stdout)

    prefixes = {"single": f"agui-test-{uuid.uuid4().hex}", "cluster": f"agui-test-{uuid.uuid4().hex}"}
    urls = {"single": redis_url, "cluster": redis_cluster_url}
    try:
        for name, url in urls.items():
            imported = await run_cli("import", str(archive), *redis_args(url, prefixes[name]))
            assert imported.returncode == 0, imported.stderr.decode()
            async with opened(RedisStore(url, prefix=prefixes[name])) as target:
                assert await snapshot_of(target) == original, name  # every record, byte for byte
                for thread_id in thread_ids:
                    raw, compacted = await served_streams(target, thread_id)
                    want_raw, want_compacted = streams[thread_id]
                    for got_events, want_events in ((raw, want_raw), (compacted, want_compacted)):
                        got, want = official_client.replay(got_events), official_client.replay(want_events)
                        assert got.error is None, (name, thread_id, got.error)
                        assert (got.messages, got.state, got.pending_interrupts) == (
                            want.messages,
                            want.state,
                            want.pending_interrupts,
                        ), (name, thread_id)
        # From the cluster to a new file store: the archive is the same bytes as the first.
        again = await run_cli("export", *redis_args(redis_cluster_url, prefixes["cluster"]))
        assert again.returncode == 0, again.stderr.decode()
        assert again.stdout == exported.stdout
        back_dir = tmp_path / "back"
        restored = await run_cli("import", "-", "--data", str(back_dir), stdin=again.stdout)
        assert restored.returncode == 0, restored.stderr.decode()
        async with opened(FileStore(back_dir)) as back:
            assert await snapshot_of(back) == original
    finally:
        await delete_prefix(redis_url, prefixes["single"])
        await delete_prefix(redis_cluster_url, prefixes["cluster"])


async def test_an_import_refuses_threads_the_store_has_unless_replace(tmp_path: Path) -> None:
    async with opened(FileStore(tmp_path / "a")) as a:
        await a.append("t", [NewEvent({"type": "CUSTOM", "name": "n", "value": "from a"}, "r")])
        await a.append("u", [NewEvent({"type": "CUSTOM", "name": "n", "value": "u"}, "r")])
    async with opened(FileStore(tmp_path / "b")) as b:
        await b.append("t", [NewEvent({"type": "CUSTOM", "name": "n", "value": "from b"}, "r")])
        before = await snapshot_of(b)
    archive = tmp_path / "a.jsonl"
    result = await run_cli("export", "--data", str(tmp_path / "a"), "-o", str(archive))
    assert result.returncode == 0, result.stderr.decode()
    refused = await run_cli("import", str(archive), "--data", str(tmp_path / "b"))
    assert refused.returncode == 1
    assert b"t: the store has this thread" in refused.stderr
    async with opened(FileStore(tmp_path / "b")) as b:
        after = await snapshot_of(b)
        assert after["t"] == before["t"]  # kept as it was
        assert [r.event["value"] async for r in b.read("u")] == ["u"]  # the others are imported
    replaced = await run_cli("import", str(archive), "--data", str(tmp_path / "b"), "--replace")
    assert replaced.returncode == 0, replaced.stderr.decode()
    async with opened(FileStore(tmp_path / "a")) as a, opened(FileStore(tmp_path / "b")) as b:
        assert await snapshot_of(b) == await snapshot_of(a)


async def test_a_cut_or_damaged_archive_is_a_clear_error_and_imports_no_part_of_a_thread(tmp_path: Path) -> None:
    async with opened(FileStore(tmp_path / "a")) as a:
        for thread_id in ("t1", "t2"):
            await a.append(thread_id, [NewEvent({"type": "CUSTOM", "name": "n", "value": v}, "r") for v in range(5)])
    exported = await run_cli("export", "--data", str(tmp_path / "a"))
    lines = exported.stdout.splitlines(keepends=True)
    cases = {
        "cut": (b"".join(lines[:-3]), b"ends inside thread 't2'"),
        "gap": (b"".join(lines[:10] + lines[11:]), b"seq 3 where 2 was expected"),  # t2's seq 2 dropped
        "foreign": (b'{"hello": 1}\n', b"not an agui-gateway archive"),
    }
    for name, (data, message) in cases.items():
        target = tmp_path / name
        result = await run_cli("import", "-", "--data", str(target), stdin=data)
        assert result.returncode == 1, name
        assert message in result.stderr, (name, result.stderr)
        async with opened(FileStore(target)) as store:
            imported = {i.thread_id: i.events for i in await store.list_threads()}
        # The threads before the damage are imported, whole; nothing of the damaged one.
        assert imported == ({} if name == "foreign" else {"t1": 5}), name
        assert not (target / "incoming").exists() or not any((target / "incoming").iterdir())


async def test_threads_delete_removes_them_from_a_file_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with opened(FileStore(data)) as store:
        for thread_id in ("a", "b", "c"):
            await store.append(thread_id, [NewEvent({"type": "CUSTOM", "name": "n", "value": 1}, "r")])
    result = await run_cli("threads", "delete", "a", "c", "--data", str(data))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().split() == ["deleted", "a", "deleted", "c"]
    assert sorted(p.name for p in (data / "threads").iterdir()) == ["b"]
    missing = await run_cli("threads", "delete", "a", "--data", str(data))
    assert missing.returncode == 1 and b"a: no such thread" in missing.stderr
    bad = await run_cli("threads", "delete", "../b", "--data", str(data))
    assert bad.returncode == 2 and (data / "threads" / "b").is_dir()


@pytest.mark.redis
async def test_threads_delete_on_redis_keeps_a_leased_thread_unless_forced(redis_url: str) -> None:
    prefix = f"agui-test-{uuid.uuid4().hex}"
    try:
        async with opened(RedisStore(redis_url, prefix=prefix)) as store:
            assert store.leases is not None
            await store.append("t", [NewEvent({"type": "CUSTOM", "name": "n", "value": 1}, "r")])
            lease = await store.leases.acquire("t", "run")
            assert lease is not None
            kept = await run_cli("threads", "delete", "t", *redis_args(redis_url, prefix))
            assert kept.returncode == 1 and b"a run holds its lease" in kept.stderr
            assert await store.last_seq("t") == 1
            forced = await run_cli("threads", "delete", "t", "--force", *redis_args(redis_url, prefix))
            assert forced.returncode == 0, forced.stderr.decode()
            assert await store.head("t") is None and await store.list_threads() == []
    finally:
        await delete_prefix(redis_url, prefix)


def _run_event(kind: str, thread_id: str) -> NewEvent:
    return NewEvent({"type": kind, "threadId": thread_id, "runId": "r"}, "r")


async def _open_runs_shown(*store_args: str) -> list[str]:
    shown = await run_cli("recover", "--json", *store_args)
    assert shown.returncode == 0, shown.stderr.decode()
    return list(orjson.loads(shown.stdout)["open"])


@pytest.mark.redis
async def test_a_run_left_open_moves_with_its_thread_and_goes_with_its_delete(tmp_path: Path, redis_url: str) -> None:
    source_dir, target_dir = tmp_path / "source", tmp_path / "target"
    async with opened(FileStore(source_dir)) as source:
        await source.append("cut-off", [_run_event("RUN_STARTED", "cut-off")])  # a crash left it open
        await source.append("done", [_run_event("RUN_STARTED", "done"), _run_event("RUN_FINISHED", "done")])
    assert await _open_runs_shown("--data", str(source_dir)) == ["cut-off"]
    exported = await run_cli("export", "--data", str(source_dir))
    assert exported.returncode == 0, exported.stderr.decode()
    prefix = f"agui-test-{uuid.uuid4().hex}"
    try:
        # Imported elsewhere, the run is still open there: `recover` (and a start-up) finds it.
        for store_args in (["--data", str(target_dir)], redis_args(redis_url, prefix)):
            imported = await run_cli("import", "-", *store_args, stdin=exported.stdout)
            assert imported.returncode == 0, imported.stderr.decode()
            assert await _open_runs_shown(*store_args) == ["cut-off"]
            deleted = await run_cli("threads", "delete", "cut-off", *store_args)
            assert deleted.returncode == 0, deleted.stderr.decode()
            assert await _open_runs_shown(*store_args) == []
            full = await run_cli("recover", "--full", "--json", *store_args)  # and nothing was missed
            assert full.returncode == 0 and orjson.loads(full.stdout)["open"] == []
    finally:
        await delete_prefix(redis_url, prefix)
