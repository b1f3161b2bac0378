"""The file store's open-run index on disk: written before a run's RUN_STARTED, never
missing an open run through a SIGKILL, built for a data directory that has none, and
repaired from the logs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

import agui_gateway.store.file.fs
import agui_gateway.store.file.store
from agui_gateway.store.base import StoreError
from agui_gateway.store.file import FileStore
from agui_gateway.store.file.run_index import INDEX_NAME
from store.contract import drain, finished, new, started


def index_on_disk(data_dir: Path) -> list[str]:
    doc = orjson.loads((data_dir / INDEX_NAME).read_bytes())
    assert doc["format"] == 1
    return list(doc["threads"])


def open_in_logs(data_dir: Path) -> set[str]:
    """The threads whose log ends in an open run, read from the files themselves
    (the last RUN_STARTED / RUN_FINISHED / RUN_ERROR of each log's whole lines)."""
    found = set()
    for folder in (data_dir / "threads").iterdir():
        state = False
        raw = (folder / "log.jsonl").read_bytes() if (folder / "log.jsonl").exists() else b""
        for line in raw.split(b"\n")[:-1]:
            try:
                kind = orjson.loads(line)["event"].get("type")
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if kind == "RUN_STARTED":
                state = True
            elif kind in ("RUN_FINISHED", "RUN_ERROR"):
                state = False
        if state:
            found.add(folder.name)
    return found


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def opened(data_dir: Path, **options: object) -> FileStore:
    store = FileStore(data_dir, **options)  # type: ignore[arg-type]
    await store.open()
    return store


async def test_the_index_names_the_thread_on_disk_before_its_run_started_is_written(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await opened(data_dir, fsync="always")
    seen: list[tuple[bytes, list[str]]] = []
    write_and_sync = agui_gateway.store.file.fs.write_and_sync

    def watching(fd: int, data: bytes) -> None:  # what the index file says as each log write starts
        seen.append((data, index_on_disk(data_dir)))
        write_and_sync(fd, data)

    monkeypatch.setattr(agui_gateway.store.file.log, "write_and_sync", watching)
    try:
        await store.append("t", [new("before any run", None)])
        await store.append("t", [started("r1"), new(0, "r1")])
        await store.append("t", [finished("r1")])
        await store.append("u", [started("r1", "u"), finished("r1", "u")])  # starts and ends in one write
    finally:
        await store.close()
    assert [index for _, index in seen] == [[], ["t"], ["t"], ["u"]]
    assert b"RUN_STARTED" in seen[1][0] and b"RUN_STARTED" in seen[3][0]
    assert index_on_disk(data_dir) == []  # the ends dropped them, lazily but before close returned


async def test_an_index_that_cannot_be_written_refuses_the_run_start_and_stores_nothing(data_dir: Path) -> None:
    store = await opened(data_dir)
    try:
        await store.append("t", [new(0, None)])
        blocker = data_dir / INDEX_NAME  # a directory where the index goes: rename over it fails
        blocker.unlink()
        blocker.mkdir()
        (blocker / "x").write_bytes(b"")
        with pytest.raises(StoreError, match="open-run index"):
            await store.append("t", [started("r"), new(1, "r")])
        await store.append("t", [new(2, None)])  # no run started: nothing to index
        assert [r.event.get("value") for r in await drain(store.read("t"))] == [0, 2]
        (blocker / "x").unlink()
        blocker.rmdir()
        assert [r.seq for r in await store.append("t", [started("r")])] == [3]  # it writes again
        assert index_on_disk(data_dir) == ["t"]
    finally:
        await store.close()


async def test_a_data_directory_without_an_index_gets_one_built_from_its_logs(data_dir: Path) -> None:
    store = await opened(data_dir)
    await store.append("open", [started("r", "open"), new(0, "r")])
    await store.append("done", [started("r", "done"), finished("r", "done")])
    await store.close()
    (data_dir / INDEX_NAME).unlink()  # as a version before the index left it
    store = await opened(data_dir)
    try:
        assert await store.open_run_threads() == ["open"]
        assert index_on_disk(data_dir) == ["open"]
    finally:
        await store.close()
    (data_dir / INDEX_NAME).write_bytes(b'{"format": 1, "threads": [')  # damaged outside our control
    store = await opened(data_dir)
    try:
        assert await store.open_run_threads() == ["open"]
    finally:
        await store.close()


async def test_an_extra_entry_goes_when_its_thread_is_opened_and_a_lost_one_comes_back(data_dir: Path) -> None:
    store = await opened(data_dir)
    await store.append("open", [started("r", "open")])
    await store.append("done", [started("r", "done"), finished("r", "done")])
    await store.close()
    (data_dir / INDEX_NAME).write_bytes(orjson.dumps({"format": 1, "threads": ["done"]}))  # hand-edited
    store = await opened(data_dir)
    try:
        assert await store.open_run_threads() == ["done"]  # extra, harmless; "open" is missed
        assert await store.last_seq("done") == 2  # opening the thread finds its run ended
        assert await store.open_run_threads() == []
        repair = await store.repair_open_runs()  # the explicit full scan finds the missed one
        assert (repair.threads, repair.open, repair.added, repair.removed) == (2, ("open",), ("open",), ())
        assert index_on_disk(data_dir) == ["open"]
    finally:
        await store.close()


_CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, random, sys
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.file import FileStore

    def ev(kind, run, **fields):
        return NewEvent({"type": kind, **fields}, run)

    async def runner(store, task, rng):
        for n in range(10**9):
            thread = f"t{rng.randrange(40)}"
            run = f"r{task}-{n}"
            batches = [[ev("RUN_STARTED", run, threadId=thread, runId=run)]]
            batches += [[ev("CUSTOM", run, name="n", value=k) for k in range(rng.randint(1, 3))]
                        for _ in range(rng.randint(0, 3))]
            batches.append([ev("RUN_FINISHED" if rng.random() < 0.7 else "RUN_ERROR", run, message="x")])
            if rng.random() < 0.3:  # a run in one batch: started and ended in one write
                batches = [[e for b in batches for e in b]]
            for batch in batches:
                await store.append(thread, batch)
            sys.stdout.write("ok\\n")
            sys.stdout.flush()

    async def main():
        store = FileStore(sys.argv[1], fsync=sys.argv[2])
        await store.open()
        rng = random.Random(int(sys.argv[3]))
        # Runners may meet on a thread (the gateway admits one run at a time, the store
        # does not care): the index follows the last run boundary stored either way.
        await asyncio.gather(*(runner(store, i, random.Random(rng.random())) for i in range(6)))

    asyncio.run(main())
    """
)


def _run_and_kill(data_dir: Path, fsync: str, seed: int, kill_after: int) -> None:
    package_root = Path(agui_gateway.store.file.store.__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-c", _CRASH_CHILD, str(data_dir), fsync, str(seed)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, env=env)
    try:
        assert child.stdout is not None
        for _ in range(kill_after):
            if not child.stdout.readline():
                raise AssertionError(f"child exited early with {child.wait()}")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("fsync", ["always", "never"])
async def test_a_sigkill_never_leaves_an_open_run_outside_the_index(data_dir: Path, fsync: str) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    for round_ in range(3):  # killed, restarted on the same data, killed again
        await asyncio.to_thread(_run_and_kill, data_dir, fsync, rng.randrange(2**32), rng.randint(5, 120))
        on_disk = set(index_on_disk(data_dir))
        missed = open_in_logs(data_dir) - on_disk
        assert not missed, f"seed {seed}, round {round_}: open runs missing from the index: {missed}"
        store = await opened(data_dir)
        try:
            listed = await store.open_run_threads()
            assert set(listed) == on_disk
            for thread_id in listed:  # opening each (as recovery does) leaves exactly the open ones
                await store.last_seq(thread_id)
            assert set(await store.open_run_threads()) == open_in_logs(data_dir), f"seed {seed}"
        finally:
            await store.close()


async def test_listing_the_open_runs_opens_no_thread(data_dir: Path) -> None:
    store = await opened(data_dir, fsync="never")
    for i in range(300):
        thread_id = f"t{i:03d}"
        await store.append(thread_id, [started("r", thread_id), new(i, "r")])
        if i % 100:
            await store.append(thread_id, [finished("r", thread_id)])
    await store.close()
    store = await opened(data_dir)
    try:
        assert await store.open_run_threads() == ["t000", "t100", "t200"]
        assert len(store._logs) == 0 and len(store._peeked) == 0  # from the index file alone
    finally:
        await store.close()
