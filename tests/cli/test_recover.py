"""``agui-gateway recover [--full]``, run as a real process on the file store and on Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
import redis
from support.stores import delete_keys

from agui_gateway.store.base import NewEvent, ThreadStore
from agui_gateway.store.file import FileStore
from agui_gateway.store.redis import RedisStore

CLI = [sys.executable, "-m", "agui_gateway", "recover"]


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], capture_output=True, timeout=120, check=False)


def run_json(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.returncode == 0, result.stderr.decode()
    return dict(orjson.loads(result.stdout))


def run_event(kind: str, thread_id: str) -> NewEvent:
    return NewEvent({"type": kind, "threadId": thread_id, "runId": "r"}, "r")


async def write_threads(store: ThreadStore) -> None:
    await store.open()
    try:
        for thread_id in ("cut-off", "also-cut", "finished", "no-runs"):
            await store.append(thread_id, [NewEvent({"type": "CUSTOM", "name": "n", "value": 1}, None)])
        for thread_id in ("cut-off", "also-cut", "finished"):
            await store.append(thread_id, [run_event("RUN_STARTED", thread_id)])
        await store.append("finished", [run_event("RUN_FINISHED", "finished")])
    finally:
        await store.close()


def test_recover_shows_the_index_and_full_rebuilds_it_on_the_file_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    asyncio.run(write_threads(FileStore(data)))
    shown = run("--data", str(data))
    assert shown.returncode == 0, shown.stderr.decode()
    assert b"threads with an open run (2): also-cut, cut-off" in shown.stdout
    index = data / "open-runs.json"
    index.write_bytes(orjson.dumps({"format": 1, "threads": ["finished"]}))  # lost one, holds an extra
    assert run_json("--data", str(data))["open"] == ["finished"]
    repaired = run_json("--data", str(data), "--full")
    assert repaired == {
        "threads": 4,
        "open": ["also-cut", "cut-off"],
        "added": ["also-cut", "cut-off"],
        "removed": ["finished"],
        "store": f"file {data} (fsync=always)",
    }
    assert orjson.loads(index.read_bytes())["threads"] == ["also-cut", "cut-off"]
    again = run("--data", str(data), "--full")
    assert b"added (open runs the index had missed): none" in again.stdout


def test_recover_refuses_a_bad_store_setting(tmp_path: Path) -> None:
    result = run("--data", str(tmp_path), "--store", "http://nowhere")
    assert result.returncode == 2 and b"Redis URL" in result.stderr


@pytest.mark.redis
def test_recover_full_rebuilds_the_index_on_redis(redis_url: str) -> None:
    prefix = f"agui-recover-{uuid.uuid4().hex}"
    try:
        asyncio.run(write_threads(RedisStore(redis_url, prefix=prefix)))
        args = ("--store", redis_url, "--redis-prefix", prefix)
        assert run_json(*args)["open"] == ["also-cut", "cut-off"]
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(f"{prefix}:open-runs")  # lost outside the store's control
            client.sadd(f"{prefix}:open-runs", "finished")
        finally:
            client.close()
        repaired = run_json(*args, "--full")
        assert (repaired["threads"], repaired["open"], repaired["added"], repaired["removed"]) == (
            4,
            ["also-cut", "cut-off"],
            ["also-cut", "cut-off"],
            ["finished"],
        )
        assert run_json(*args)["open"] == ["also-cut", "cut-off"]
    finally:
        delete_keys(redis_url, prefix)
