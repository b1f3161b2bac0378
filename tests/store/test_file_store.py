"""The embedded JSONL store: the shared contract plus crash recovery and the on-disk format."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.waiting import wait_until_async

import agui_gateway.store.file.store
from agui_gateway.store.base import LEGACY_EPOCH, Checkpoint, InvalidThreadId, NewEvent, ThreadHead, ThreadStore
from agui_gateway.store.file import FileStore
from agui_gateway.store.file.scan import INDEX_EVERY, LineSplitter
from agui_gateway.store.records import decode_scan, encode_unsequenced, sequence_line, slice_event
from agui_testkit.strategies import json_objects
from store.contract import (
    AWKWARD_RUN_IDS,
    MakeStore,
    StoreContract,
    awkward_events,
    drain,
    events_holding_the_envelope,
    new,
    opened_stores,
)


class TestFileStore(StoreContract):
    @pytest.fixture(params=["always", "interval", "never"])
    async def make_store(self, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStore]:
        async with opened_stores(
            lambda: FileStore(tmp_path / "data", fsync=request.param, fsync_interval_ms=5)
        ) as make:
            yield make


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def open_store(data_dir: Path) -> AsyncIterator[list[FileStore]]:
    """Opened stores over ``data_dir``; use :func:`reopen` to simulate a restart."""
    stores: list[FileStore] = []
    yield stores
    for store in stores:
        await store.close()


async def reopen(stores: list[FileStore], data_dir: Path, **options: object) -> FileStore:
    for store in stores:
        await store.close()
    store = FileStore(data_dir, **options)  # type: ignore[arg-type]
    await store.open()
    stores.append(store)
    return store


def log_path(data_dir: Path, thread_id: str = "t") -> Path:
    return data_dir / "threads" / thread_id / "log.jsonl"


def log_lines(data_dir: Path, thread_id: str = "t") -> list[dict]:
    raw = log_path(data_dir, thread_id).read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]


def torn_files(data_dir: Path, thread_id: str = "t") -> list[Path]:
    return sorted(log_path(data_dir, thread_id).parent.glob("log.jsonl.torn-*"))


# -- on-disk format ------------------------------------------------------------------------


async def test_log_is_one_json_line_per_record(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    sent = {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m", "delta": "h\u00e9"}
    appended = await store.append("t", [NewEvent(sent, "r1"), NewEvent({"type": "X"}, None, "gateway")])
    lines = log_lines(data_dir)
    assert lines == [r.to_json_dict() for r in appended]
    assert lines[0] == {"seq": 1, "runId": "r1", "ts": appended[0].ts, "source": "agent", "event": sent}
    assert lines[1]["source"] == "gateway" and lines[1]["runId"] is None


async def test_invalid_thread_id_touches_no_path(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    before = sorted(p.relative_to(data_dir.parent) for p in data_dir.parent.rglob("*"))
    for bad in ("../escape", "..", "a/b", "\x00"):
        with pytest.raises(InvalidThreadId):
            await store.append(bad, [new(0)])
        with pytest.raises(InvalidThreadId):
            await store.save_checkpoint(bad, Checkpoint(0, b"x"))
    assert sorted(p.relative_to(data_dir.parent) for p in data_dir.parent.rglob("*")) == before


async def test_read_only_calls_create_nothing(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    assert await store.last_seq("ghost") == 0
    assert await drain(store.read("ghost")) == []
    assert await store.thread_info("ghost") is None
    assert await store.load_checkpoint("ghost") is None
    assert list((data_dir / "threads").iterdir()) == []


async def test_list_threads_ignores_foreign_entries(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("good", [new(0)])
    threads = data_dir / "threads"
    (threads / "not a thread id").mkdir()
    (threads / "not a thread id" / "log.jsonl").write_bytes(log_path(data_dir, "good").read_bytes())
    (threads / "stray-file").write_bytes(b"x")
    (threads / "empty-dir").mkdir()
    store = await reopen(open_store, data_dir)
    assert [i.thread_id for i in await store.list_threads()] == ["good"]


async def test_thread_info_of_unopened_threads_matches_opened(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    for name, count in (("a", 1), ("b", 700)):
        for start in range(0, count, 100):
            await store.append(name, [new(v) for v in range(start, min(start + 100, count))])
    expected = {i.thread_id: i for i in await store.list_threads()}
    store = await reopen(open_store, data_dir)
    assert {i.thread_id: i for i in await store.list_threads()} == expected  # from the tail
    assert await store.last_seq("b") == 700  # full open
    assert await store.thread_info("b") == expected["b"]


# -- torn tails and malformed lines ------------------------------------------------------------


TORN_TAILS = {
    "no-newline": b'{"seq":6,"runId":"r","ts":1,"source":"agent","ev',
    "not-json": b"\x00\x00\x00\x00\n",
    "duplicate-seq": b'{"seq":5,"runId":null,"ts":1,"source":"agent","event":{"type":"X"}}\n',
    "seq-gap": b'{"seq":9,"runId":null,"ts":1,"source":"agent","event":{"type":"X"}}\n',
    "complete-json-no-newline": b'{"seq":6,"runId":null,"ts":1,"source":"agent","event":{"type":"X"}}',
    "two-bad-lines": b'garbage\n{"seq":6,',
}


@pytest.mark.parametrize("tail", list(TORN_TAILS), ids=str)
async def test_torn_tail_is_repaired_on_open(open_store: list[FileStore], data_dir: Path, tail: str) -> None:
    store = await reopen(open_store, data_dir)
    appended = await store.append("t", [new(v) for v in range(5)])
    await store.close()
    good = log_path(data_dir).read_bytes()
    with log_path(data_dir).open("ab") as f:
        f.write(TORN_TAILS[tail])

    store = await reopen(open_store, data_dir)
    assert await store.last_seq("t") == 5
    assert await drain(store.read("t")) == appended
    assert log_path(data_dir).read_bytes() == good
    [side] = torn_files(data_dir)
    assert side.read_bytes() == TORN_TAILS[tail]
    assert (store.stats.torn_repairs, store.stats.malformed_lines) == (1, 0)

    assert [r.seq for r in await store.append("t", [new(5)])] == [6]
    assert [line["seq"] for line in log_lines(data_dir)] == [1, 2, 3, 4, 5, 6]
    store = await reopen(open_store, data_dir)  # repair is idempotent
    assert await store.last_seq("t") == 6
    assert store.stats.torn_repairs == 0 and len(torn_files(data_dir)) == 1


async def test_torn_first_line_leaves_an_empty_thread(open_store: list[FileStore], data_dir: Path) -> None:
    log_path(data_dir).parent.mkdir(parents=True)
    log_path(data_dir).write_bytes(b'{"seq":1,"runId":null,"ts"')
    store = await reopen(open_store, data_dir)
    assert await store.thread_info("t") is None
    assert await store.list_threads() == []
    assert [r.seq for r in await store.append("t", [new(0)])] == [1]
    assert len(torn_files(data_dir)) == 1


async def test_malformed_middle_lines_are_skipped_and_counted(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(v) for v in range(6)])
    await store.close()
    lines = log_path(data_dir).read_bytes().splitlines(keepends=True)
    lines[2] = b"{this is not json\n"  # record 3 hand-damaged
    lines.insert(4, lines[1])  # a duplicate of record 2 after record 4: seq goes backwards
    lines.insert(5, b"[1, 2, 3]\n")  # valid JSON, not a record
    log_path(data_dir).write_bytes(b"".join(lines))

    store = await reopen(open_store, data_dir)
    assert [r.event["value"] for r in await drain(store.read("t"))] == [0, 1, 3, 4, 5]
    assert [r.seq for r in await drain(store.read("t", after=2))] == [4, 5, 6]
    assert len(await drain(store.read_lines("t"))) == 5
    assert store.malformed_lines == 3 and store.stats.torn_repairs == 0
    assert await store.last_seq("t") == 6
    assert [r.seq for r in await store.append("t", [new(6)])] == [7]


# -- events served as their stored bytes ---------------------------------------------------------


def _line(seq: int, value: object, run_id: str | None = "r") -> bytes:
    """A line exactly as the store writes it."""
    event = {"type": "CUSTOM", "name": "n", "value": value}
    return orjson.dumps({"seq": seq, "runId": run_id, "ts": 1, "source": "agent", "event": event}) + b"\n"


# Lines a hand edit can leave in a log, beside lines as the store writes them. The
# stale copy of record 2 and the two records run together are bad (skipped and counted);
# the others are good records in another shape, which a reader must decode.
HAND_EDITED = [
    _line(1, 1),
    _line(2, '"event":{"v":0}}', run_id="x,event:{ \\"),
    _line(3, 3)[:-2] + b',"extra":{"event":{"v":0}}}\n',  # a key after the event
    _line(4, 4)[:-2] + b',"event":{"v":"dup"}}\n',  # the event key twice: the last counts
    b'{"seq": 5, "runId": null, "ts": 1, "source": "agent", "event": {"type": "CUSTOM", "value": 5}}\n',
    _line(6, 6)[:-1] + _line(7, 7),  # a newline deleted: not JSON
    b'{"runId":"r","seq":7,"ts":1,"source":"agent","event":{"type":"CUSTOM","value":7}}\n',
    b'{"seq":8,"runId":"r","ts":1,"source":"agent","event":{"type":"CUSTOM",\r"value":8}}\n',
    _line(2, "stale"),
    _line(9, 9),
]
HAND_EDITED_ODD = 7  # every line but records 1, 2 and 9


async def _event_json_matches_read(store: FileStore, thread_id: str, after: int) -> list[int]:
    records = await drain(store.read(thread_id, after))
    got = await drain(store.read_event_json(thread_id, after))
    assert [seq for seq, _ in got] == [r.seq for r in records], after
    for (seq, data), record in zip(got, records, strict=True):
        assert b"\n" not in data and b"\r" not in data, seq
        assert orjson.dumps(orjson.loads(data)) == orjson.dumps(record.event), seq
    lines = await drain(store.read_lines(thread_id, after))
    assert [orjson.loads(line)["seq"] for line in lines] == [r.seq for r in records], after
    return [r.seq for r in records]


@pytest.fixture
def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The lines the file store decodes (it must decode only lines it cannot cut)."""
    decoded: list[bytes] = []
    real = agui_gateway.store.file.store.decode_record

    def counting(line: bytes):  # type: ignore[no-untyped-def]
        decoded.append(line)
        return real(line)

    monkeypatch.setattr(agui_gateway.store.file.store, "decode_record", counting)
    return decoded


async def test_event_json_of_hand_edited_lines_is_decoded(
    open_store: list[FileStore], data_dir: Path, count_decodes: list[bytes]
) -> None:
    log_path(data_dir).parent.mkdir(parents=True)
    torn = b'{"seq": 12, "runId": null, "ts": 1, "source": "agent", "event": {}}\n'  # seq gap: cut off
    log_path(data_dir).write_bytes(b"".join(HAND_EDITED) + torn)
    store = await reopen(open_store, data_dir)
    assert await store.last_seq("t") == 9 and store.stats.torn_repairs == 1
    assert store.malformed_lines == 2
    events = {r.seq: r.event for r in await drain(store.read("t"))}
    assert events[2]["value"] == '"event":{"v":0}}' and events[3]["value"] == 3
    assert events[4] == {"v": "dup"} and events[8]["value"] == 8

    for after in range(11):
        assert await _event_json_matches_read(store, "t", after) == [s for s in (1, 2, 3, 4, 5, 7, 8, 9) if s > after]

    count_decodes.clear()
    await drain(store.read_event_json("t"))
    assert len(count_decodes) == HAND_EDITED_ODD
    appended = await store.append("t", [new(v) for v in range(INDEX_EVERY + 3)])  # where the torn line was
    count_decodes.clear()
    got = await drain(store.read_event_json("t", after=9))
    # The read passes the odd lines before seq 9 again; the store's own lines are cut.
    assert set(count_decodes) <= {line.rstrip(b"\n") for line in HAND_EDITED}
    assert [(seq, orjson.loads(data)) for seq, data in got] == [(r.seq, r.event) for r in appended]
    count_decodes.clear()
    await drain(store.read_lines("t"))
    assert len(count_decodes) == HAND_EDITED_ODD


async def test_event_json_of_a_long_log_with_odd_lines_from_any_offset(
    open_store: list[FileStore], data_dir: Path, count_decodes: list[bytes]
) -> None:
    log_path(data_dir).parent.mkdir(parents=True)
    total = INDEX_EVERY * 4 + 11
    lines = []
    for seq in range(1, total + 1):
        line = _line(seq, "v" * (seq % 13), run_id=None if seq % 2 else f"run-{seq // 100}")
        if seq % 41 == 0:  # the same record, keys in another order
            record = orjson.loads(line)
            line = orjson.dumps({k: record[k] for k in ("event", "seq", "runId", "ts", "source")}) + b"\n"
        lines.append(line)
    log_path(data_dir).write_bytes(b"".join(lines))
    store = await reopen(open_store, data_dir)
    assert store.malformed_lines == 0
    probes = {0, 1, 40, 41, total - 1, total} | {k * INDEX_EVERY + d for k in range(5) for d in (-1, 0, 1)}
    for after in sorted(p for p in probes if p >= 0):
        assert await _event_json_matches_read(store, "t", after) == list(range(after + 1, total + 1))
    count_decodes.clear()
    await drain(store.read_event_json("t"))
    assert len(count_decodes) == total // 41


async def test_event_json_is_what_the_default_serialisation_gives(
    open_store: list[FileStore], data_dir: Path, count_decodes: list[bytes]
) -> None:
    store = await reopen(open_store, data_dir)
    events = awkward_events() + events_holding_the_envelope()
    run_ids = [r for r in AWKWARD_RUN_IDS if r is None or '"' not in r]  # a quote: decoded, see below
    await store.append("t", [NewEvent(e, run_ids[i % len(run_ids)]) for i, e in enumerate(events)])
    count_decodes.clear()
    fast = await drain(store.read_event_json("t", 2))
    assert count_decodes == []
    default = await drain(ThreadStore._read_event_json(store, "t", 2))  # serialises read()
    assert len(count_decodes) == len(events)  # every line up to the end
    assert fast == default and len(fast) == len(events) - 2


def test_line_splitter_blocks_are_the_complete_lines_of_any_chunking() -> None:
    rng = random.Random(7)
    data = b"".join(b"x" * rng.choice((0, 1, 5, 70, 300)) + b"\n" for _ in range(400)) + b"partial"
    complete = data[: data.rindex(b"\n") + 1]
    for _ in range(30):
        splitter, blocks, pos = LineSplitter(0), [], 0
        while pos < len(data):
            chunk = data[pos : pos + rng.choice((1, 2, 7, 64, 301, 5000))]
            pos += len(chunk)
            start = splitter.line_start
            block = splitter.block(chunk)
            assert block == b"" or block.endswith(b"\n")
            blocks.append((start, block))
        assert b"".join(block for _, block in blocks) == complete
        assert all(complete[start : start + len(block)] == block for start, block in blocks)
        assert splitter.line_start == len(complete) and splitter.has_partial


_awkward_text = st.text(st.sampled_from('"\\{}:, event\u00e9\U0001f600\n\r\x00'), max_size=24) | st.text(max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    event=json_objects(),
    value=_awkward_text,
    run_id=st.none() | _awkward_text,
    seq=st.integers(1, 2**63 - 1),
    ts=st.integers(-(2**63), 2**63 - 1),
    source=st.sampled_from(("agent", "gateway")),
)
def test_slice_event_cuts_exactly_the_event_of_a_stored_line(
    event: dict, value: str, run_id: str | None, seq: int, ts: int, source: str
) -> None:
    event = {**event, "value": value}
    line = sequence_line(seq, encode_unsequenced(NewEvent(event, run_id, source), ts))  # type: ignore[arg-type]
    if run_id is not None and '"' in run_id:  # rare enough to be left to decoding
        assert slice_event(line[:-1]) is None
        assert decode_scan(line[:-1])[:3] == (seq, ts, False)  # type: ignore[index]
    else:
        assert slice_event(line[:-1]) == (seq, orjson.dumps(event))
        assert decode_scan(line[:-1])[:3] == (seq, ts, True)  # type: ignore[index]


@pytest.mark.parametrize("line", HAND_EDITED[2:8], ids=lambda line: line[:40].decode(errors="replace"))
def test_decode_scan_tells_lines_of_another_shape(line: bytes) -> None:
    fields = decode_scan(line.rstrip(b"\n"))
    assert fields is None or fields[2] is False


# -- the sparse index --------------------------------------------------------------------------


async def test_reopen_builds_a_sparse_index_that_reads_from_any_offset(
    open_store: list[FileStore], data_dir: Path
) -> None:
    store = await reopen(open_store, data_dir, fsync="never")
    total = INDEX_EVERY * 9 + 37
    value = 0
    while value < total:
        size = min(1 + value % 50, total - value)  # uneven batches and line lengths
        await store.append("t", [new("x" * (v % 17), n=v) for v in range(value, value + size)])
        value += size

    store = await reopen(open_store, data_dir)
    assert await store.last_seq("t") == total
    index = store._logs["t"].index
    assert len(index) <= total // INDEX_EVERY + 1
    raw = log_path(data_dir).read_bytes()
    for seq, offset in zip(index.seqs, index.offsets, strict=True):
        assert orjson.loads(raw[offset : raw.index(b"\n", offset)])["seq"] == seq
    probes = set(range(0, total + 2, 97)) | {total - 1, total, total + 1}
    probes |= {k * INDEX_EVERY + d for k in range(10) for d in (-1, 0, 1)}
    for after in sorted(p for p in probes if p >= 0):
        seqs = [r.seq for r in await drain(store.read("t", after=after))]
        assert seqs == list(range(after + 1, total + 1)), after
    # Appends after the reopen extend the index consistently.
    await store.append("t", [new(v) for v in range(INDEX_EVERY + 5)])
    last = total + INDEX_EVERY + 5
    for after in (total - 3, total + 1, total + INDEX_EVERY, last - 1):
        assert [r.seq for r in await drain(store.read("t", after=after))] == list(range(after + 1, last + 1))


async def test_abandoned_reader_releases_its_file(open_store: list[FileStore], data_dir: Path) -> None:
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd to count open descriptors")
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(v) for v in range(10)])
    open_before = len(list(fd_dir.iterdir()))
    for reader in (store.read("t"), store.read_lines("t")):
        async with aclosing(reader) as records:
            async for _ in records:
                break
    assert len(list(fd_dir.iterdir())) == open_before


# -- checkpoints ---------------------------------------------------------------------------------


async def test_a_reader_cancelled_while_its_open_runs_releases_the_descriptor(
    open_store: list[FileStore], data_dir: Path
) -> None:
    """A stream is cancelled when its client goes away, at whatever await it is in; the open
    it started in the store's thread pool goes on regardless. Seen in CI: one descriptor of a
    gateway stayed open for good after 150 readers were dropped at once. Here the log is
    swapped for a FIFO after the store scanned it, so the reader's open blocks in its thread
    (until a writer opens the FIFO) exactly while the reader is cancelled."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc/self/fd to see open descriptors")
    store = await reopen(open_store, data_dir, io_threads=2)
    await store.append("t", [new(v) for v in range(10)])
    path = log_path(data_dir)
    path.unlink()
    os.mkfifo(path)

    def descriptors_on_log() -> int:
        count = 0
        for fd in fd_dir.iterdir():
            try:
                count += os.readlink(fd) == str(path)
            except FileNotFoundError:  # closed since the listing
                continue
        return count

    reader = asyncio.create_task(drain(store.read("t")))

    # The reader's open is blocked in a pool thread: the FIFO has a reader waiting on it,
    # which a non-blocking open for writing (it fails with ENXIO while none) can see.
    def writer_end() -> int | None:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return None

    writer = await wait_until_async(writer_end, timeout=10)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    # The open has returned in its thread (a writer is there); what it opened is closed.
    os.close(writer)
    await wait_until_async(lambda: descriptors_on_log() == 0, timeout=10)


async def test_checkpoint_temp_files_are_ignored_and_cleaned(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(0)])
    await store.save_checkpoint("t", Checkpoint(1, b"the real one"))
    directory = log_path(data_dir).parent
    (directory / "checkpoint.bin.tmp-crashed").write_bytes(b'{"format":1,"seq":9,"len')
    (directory / "checkpoint.bin.tmp-other").write_bytes(b"")

    store = await reopen(open_store, data_dir)
    assert await store.load_checkpoint("t") == Checkpoint(1, b"the real one")
    assert list(directory.glob("*.tmp-*")) == []
    assert store.stats.temp_files_removed == 2


async def test_damaged_checkpoint_reads_as_absent(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(0), new(1)])
    await store.save_checkpoint("t", Checkpoint(1, b"payload"))
    path = log_path(data_dir).parent / "checkpoint.bin"
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    assert await store.load_checkpoint("t") is None
    assert store.stats.corrupt_checkpoints == 1
    await store.save_checkpoint("t", Checkpoint(2, b"fresh"))
    assert await store.load_checkpoint("t") == Checkpoint(2, b"fresh")


# -- group commit and the executor ------------------------------------------------------------------


async def test_cancelled_append_is_either_stored_whole_or_not_at_all(
    open_store: list[FileStore], data_dir: Path
) -> None:
    store = await reopen(open_store, data_dir)
    tasks = [asyncio.create_task(store.append("t", [new([i, 0]), new([i, 1])])) for i in range(20)]
    tasks[5].cancel()
    tasks[17].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    stored = await drain(store.read("t"))
    assert [r.seq for r in stored] == list(range(1, len(stored) + 1))
    values = [r.event["value"] for r in stored]
    for i, result in enumerate(results):
        if isinstance(result, BaseException):
            assert isinstance(result, asyncio.CancelledError)
            assert values.count([i, 0]) == values.count([i, 1]) <= 1
        else:
            assert [r.event["value"] for r in result] == [[i, 0], [i, 1]]


async def test_concurrent_appends_share_fsyncs(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir, fsync="always")
    await asyncio.gather(*(store.append("t", [new(i)]) for i in range(50)))
    assert await store.last_seq("t") == 50
    assert store.stats.fsyncs == store.stats.writes < 50  # group commit


async def test_interval_policy_fsyncs_after_the_interval(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir, fsync="interval", fsync_interval_ms=1)
    for i in range(3):
        await store.append("t", [new(i)])
    async with asyncio.timeout(20):
        while store.stats.fsyncs == 0:  # the deferred fsync runs on its own
            await store.wait_for("t", 3, timeout=0.01)
    assert 1 <= store.stats.fsyncs <= store.stats.writes


# -- a real crash -----------------------------------------------------------------------------------

_CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.file import FileStore

    async def writer(store, task):
        for i in range(10**9):
            size = 1 + (task + i) % 3
            events = [NewEvent({"type": "CUSTOM", "name": "n", "value": [task, i, k], "pad": "x" * (k * 40)}, "run")
                      for k in range(size)]
            records = await store.append("t", events)
            sys.stdout.write(" ".join(str(r.seq) for r in records) + "\\n")
            sys.stdout.flush()

    async def main():
        store = FileStore(sys.argv[1], fsync="always")
        await store.open()
        await asyncio.gather(*(writer(store, t) for t in range(4)))

    asyncio.run(main())
    """
)


def _run_and_kill(data_dir: Path, kill_after_acks: int) -> list[int]:
    """Run the appending child, SIGKILL it after some acks, return every seq it acked."""
    package_root = Path(agui_gateway.store.file.store.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _CRASH_CHILD, str(data_dir)], stdout=subprocess.PIPE, env=env)
    acked: list[int] = []
    try:
        assert child.stdout is not None
        while len(acked) < kill_after_acks:
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"child exited early with {child.wait()}")
            acked.extend(int(s) for s in line.split())
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read()  # whatever it acked before it died
        for line in rest.split(b"\n")[:-1]:  # only whole lines: a cut one is not an ack
            acked.extend(int(s) for s in line.split())
    finally:
        child.kill()
        child.wait()
    return acked


async def _check_after_crash(data_dir: Path, acked: list[int], seed: int) -> int:
    store = FileStore(data_dir)
    await store.open()
    try:
        last = await store.last_seq("t")
        assert max(acked) <= last, f"seed {seed}: acked {max(acked)} but only {last} survived"
        records = await drain(store.read("t"))
        assert [r.seq for r in records] == list(range(1, last + 1)), f"seed {seed}"
        lines = log_lines(data_dir)  # every line is whole, valid JSON
        assert [line["seq"] for line in lines] == list(range(1, last + 1))
        assert store.malformed_lines == 0
        return last
    finally:
        await store.close()


async def test_sigkill_loses_no_acknowledged_record(data_dir: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    acked = await asyncio.to_thread(_run_and_kill, data_dir, rng.randint(5, 300))
    await _check_after_crash(data_dir, acked, seed)


@pytest.mark.slow
async def test_repeated_sigkill_and_restart(data_dir: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    previous = 0
    for _ in range(15):
        acked = await asyncio.to_thread(_run_and_kill, data_dir, rng.randint(1, 2000))
        assert min(acked) > previous, f"seed {seed}: seqs restarted"
        previous = await _check_after_crash(data_dir, acked, seed)


# -- the data lifecycle on disk -----------------------------------------------------------------

_DELETE_CRASH_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from agui_gateway.store.base import NewEvent
    from agui_gateway.store.file import FileStore
    import agui_gateway.store.file.store as file_store

    def crash(path):  # the process dies after the rename, before the files are removed
        os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        store = FileStore(sys.argv[1], fsync="always")
        await store.open()
        await store.append("t", [NewEvent({"type": "CUSTOM", "name": "n", "value": i}, "run") for i in range(50)])
        await store.append("keep", [NewEvent({"type": "CUSTOM", "name": "n", "value": "kept"}, "run")])
        file_store.remove_tree = crash
        await store.delete_thread("t")

    asyncio.run(main())
    """
)


async def test_a_crash_inside_a_delete_leaves_nothing_readable_and_the_next_open_finishes_it(
    data_dir: Path, open_store: list[FileStore]
) -> None:
    package_root = Path(agui_gateway.store.file.store.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), os.environ.get("PYTHONPATH", "")])}
    child = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", _DELETE_CRASH_CHILD, str(data_dir)], env=env, timeout=60
    )
    assert child.returncode == -signal.SIGKILL
    # The crash came after the rename: the thread's files are in the trash, none under threads/.
    assert not (data_dir / "threads" / "t").exists()
    leftovers = list((data_dir / "trash").iterdir())
    assert len(leftovers) == 1 and (leftovers[0] / "log.jsonl").stat().st_size > 0
    store = await reopen(open_store, data_dir)
    assert list((data_dir / "trash").iterdir()) == []
    assert store.stats.interrupted_deletes == 1
    assert await drain(store.read("t")) == [] and await store.head("t") is None
    assert [i.thread_id for i in await store.list_threads()] == ["keep"]
    assert [r.event["value"] for r in await drain(store.read("keep"))] == ["kept"]


async def test_a_thread_stored_before_epochs_has_the_legacy_epoch(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(0), new(1)])
    head = await store.head("t")
    assert head is not None
    # The epoch is a file beside the log, written before the first record.
    assert (data_dir / "threads" / "t" / "epoch").read_text() == head.epoch + "\n"
    (data_dir / "threads" / "t" / "epoch").unlink()  # as a store of the previous version left it
    for _ in range(2):  # the same on every open
        store = await reopen(open_store, data_dir)
        assert await store.head("t") == ThreadHead(LEGACY_EPOCH, 2)
    await store.append("t", [new(2)])
    assert await store.head("t") == ThreadHead(LEGACY_EPOCH, 3)
    await store.delete_thread("t")
    await store.append("t", [new("new")])
    again = await store.head("t")
    assert again is not None and again.epoch != LEGACY_EPOCH


async def test_an_import_a_crash_cut_short_is_dropped_on_open(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    await store.append("t", [new(0)])
    importing = store.import_thread("copy", "e1")
    await importing.add(await drain(store.read_lines("t")))  # staged, never committed: a crash
    assert len(list((data_dir / "incoming").iterdir())) == 1
    store = await reopen(open_store, data_dir)
    assert list((data_dir / "incoming").iterdir()) == []
    assert await store.head("copy") is None


async def test_an_imported_log_carries_its_last_records_time(open_store: list[FileStore], data_dir: Path) -> None:
    store = await reopen(open_store, data_dir)
    appended = await store.append("t", [new(0)])
    importing = store.import_thread("copy", "e1")
    await importing.add(await drain(store.read_lines("t")))
    await importing.commit()
    # The sweep's stat test (mtime before the cutoff: idle) holds for an imported thread.
    assert log_path(data_dir, "copy").stat().st_mtime_ns // 1_000_000 == appended[0].ts
    store = await reopen(open_store, data_dir)  # nothing opened: the sweep reads the disk
    # A log written by an append has an mtime a little after its record's ts (the write).
    written = log_path(data_dir, "t").stat().st_mtime_ns // 1_000_000
    assert (await store.idle_threads(appended[0].ts + 1)).threads[0].thread_id == "copy"
    page = await store.idle_threads(written + 1)
    assert [(t.thread_id, t.last_activity_ms) for t in page.threads] == [
        ("copy", appended[0].ts),
        ("t", appended[0].ts),
    ]
