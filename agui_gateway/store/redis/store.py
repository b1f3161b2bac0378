"""A shared store on Redis, for several gateway replicas.

Keys, with ``P`` the prefix and ``T`` the thread id (the ``{T}`` hash tag keeps
one thread's keys in one cluster slot)::

    P:{T}:log     Stream; entry id ``0-<seq>``, field ``r`` = the stored JSON line
    P:{T}:info    Hash: seq (last seq), bytes (sum of line lengths + newlines), ts
    P:{T}:ckpt    String: ``<seq>\\n<data>`` (SET replaces it atomically)
    P:threads     Sorted set of thread ids scored by last activity (ms)

Appends run one Lua script, which Redis executes atomically: it reads the last
seq, XADDs every record of the batch with explicit ids and updates the info
hash and the index, so two replicas can never assign the same seq. The script
splices ``"seq":N`` into envelopes serialised by Python, so stored lines are
byte-identical to the file store's. ``wait_for`` is served by one shared
``XREAD BLOCK`` per thread and process (:mod:`.redis_watch`), which wakes on an
append from any replica.

The index spans threads, so the append script touches keys in several slots:
this backend targets a single Redis (or a primary with replicas), not Cluster.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import orjson
import redis.asyncio as aioredis

from agui_gateway.store.base import (
    Checkpoint,
    NewEvent,
    StoredRecord,
    StoreError,
    ThreadInfo,
    ThreadStore,
    validate_thread_id,
)
from agui_gateway.store.records import decode_record, encode_unsequenced, slice_event
from agui_gateway.store.redis.watch import StreamWatch

_PAGE = 256  # records per XRANGE page: bounds memory to 256 records

# KEYS: log, info, index. ARGV: thread id, ts, then one unsequenced envelope per event.
_APPEND_LUA = """
-- The stream's last id is the source of truth for seq (the hash mirrors it).
local seq = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then seq = tonumber(string.match(top[1][1], '^0%-(%d+)$')) end
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local first = seq + 1
for i = 3, #ARGV do
  seq = seq + 1
  local id = string.format('%d', seq)
  local line = '{"seq":' .. id .. ',' .. string.sub(ARGV[i], 2)
  redis.call('XADD', KEYS[1], '0-' .. id, 'r', line)
  bytes = bytes + #line + 1
end
redis.call('HSET', KEYS[2], 'seq', string.format('%d', seq),
           'bytes', string.format('%d', bytes), 'ts', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return first
"""


class RedisStore(ThreadStore):
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "agui") -> None:
        if not prefix or any(c in prefix for c in "{}"):
            raise ValueError("prefix must be non-empty and contain no '{' or '}'")
        self.url = url
        self.prefix = prefix
        self.malformed_entries = 0  # stream entries that did not decode, skipped
        self._client: aioredis.Redis | None = None
        self._append_script: Any = None
        self._watches: dict[str, StreamWatch] = {}

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._client is None:
            client = aioredis.from_url(self.url, decode_responses=False)
            self._append_script = client.register_script(_APPEND_LUA)
            self._client = client
        await self._client.ping()

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self._watches.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise StoreError("RedisStore is not open; call await store.open() first")
        return self._client

    def _key(self, thread_id: str, kind: str) -> str:
        return f"{self.prefix}:{{{thread_id}}}:{kind}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:threads"

    # -- appends and reads ---------------------------------------------------------

    async def append(self, thread_id: str, events: Sequence[NewEvent]) -> list[StoredRecord]:
        validate_thread_id(thread_id)
        if not events:
            return []
        ts = time.time_ns() // 1_000_000
        envelopes = [encode_unsequenced(event, ts) for event in events]
        try:
            first = int(
                await self._append_script(
                    keys=[self._key(thread_id, "log"), self._key(thread_id, "info"), self._index_key],
                    args=[thread_id, ts, *envelopes],
                    client=self._redis,
                )
            )
        except (aioredis.RedisError, OSError) as exc:
            raise StoreError(f"append to Redis failed: {exc}") from exc
        watch = self._watches.get(thread_id)
        if watch is not None:  # wake local waiters without waiting for their XREAD
            watch.advance(first + len(events) - 1)
        return [StoredRecord(first + i, e.run_id, ts, e.source, e.event, e.note) for i, e in enumerate(events)]

    async def _read(self, thread_id: str, after: int) -> AsyncGenerator[StoredRecord, None]:
        async with aclosing(self._entries(thread_id, after)) as entries:
            async for record, _ in entries:
                yield record

    async def _read_event_json(
        self, thread_id: str, after: int
    ) -> AsyncGenerator[tuple[int, bytes | memoryview], None]:
        """Each event's bytes cut from its stored line (see ``records.slice_event``).

        Exact because the append script is the only writer of the stream, and it
        writes every line in the one shape; an entry of any other shape is decoded.
        """
        async with aclosing(self._pages(thread_id, after)) as pages:
            async for page in pages:
                for _, fields in page:
                    line = fields.get(b"r", b"")
                    cut = slice_event(line)
                    if cut is not None:
                        yield cut
                        continue
                    record = decode_record(line)
                    if record is None:
                        self.malformed_entries += 1
                        continue
                    yield record.seq, orjson.dumps(record.served)

    async def _read_lines(self, thread_id: str, after: int) -> AsyncGenerator[bytes, None]:
        async with aclosing(self._entries(thread_id, after)) as entries:
            async for _, line in entries:
                yield line + b"\n"

    async def _entries(self, thread_id: str, after: int) -> AsyncGenerator[tuple[StoredRecord, bytes], None]:
        async with aclosing(self._pages(thread_id, after)) as pages:
            async for page in pages:
                for _, fields in page:
                    line = fields.get(b"r", b"")
                    record = decode_record(line)
                    if record is None:
                        self.malformed_entries += 1
                        continue
                    yield record, line

    async def _pages(self, thread_id: str, after: int) -> AsyncGenerator[list[Any], None]:
        """Page through the stream with XRANGE; stops at the end it finds."""
        key = self._key(thread_id, "log")
        start = f"0-{max(after, 0) + 1}"
        while True:
            page = await self._redis.xrange(key, min=start, max="+", count=_PAGE) or []
            if page:
                yield page
            if len(page) < _PAGE:
                return
            start = f"0-{_seq_of(page[-1][0]) + 1}"

    async def last_seq(self, thread_id: str) -> int:
        validate_thread_id(thread_id)
        return int(await self._redis.hget(self._key(thread_id, "info"), "seq") or 0)

    async def wait_for(self, thread_id: str, after: int, timeout: float) -> int:
        validate_thread_id(thread_id)
        latest = await self.last_seq(thread_id)
        if latest > after or timeout <= 0:
            return latest
        watch = self._watches.get(thread_id)
        if watch is None:
            watch = StreamWatch(
                self._redis,
                self._key(thread_id, "log"),
                lambda: self.last_seq(thread_id),
                lambda idle: self._forget_watch(thread_id, idle),
            )
            self._watches[thread_id] = watch
        return await watch.wait(after, latest, timeout)

    def _forget_watch(self, thread_id: str, watch: StreamWatch) -> None:
        if self._watches.get(thread_id) is watch and watch.waiters == 0:
            del self._watches[thread_id]

    # -- listing -------------------------------------------------------------------

    async def list_threads(self) -> list[ThreadInfo]:
        thread_ids = sorted(_text(t) for t in await self._redis.zrange(self._index_key, 0, -1))
        infos = []
        for i in range(0, len(thread_ids), _PAGE):
            chunk = thread_ids[i : i + _PAGE]
            async with self._redis.pipeline(transaction=False) as pipe:
                for thread_id in chunk:
                    pipe.hgetall(self._key(thread_id, "info"))
                results = await pipe.execute()
            for thread_id, fields in zip(chunk, results, strict=True):
                info = _info_from_hash(thread_id, fields)
                if info is not None:
                    infos.append(info)
        return infos

    async def thread_info(self, thread_id: str) -> ThreadInfo | None:
        validate_thread_id(thread_id)
        return _info_from_hash(thread_id, await self._redis.hgetall(self._key(thread_id, "info")))

    # -- checkpoints -----------------------------------------------------------------

    async def load_checkpoint(self, thread_id: str) -> Checkpoint | None:
        validate_thread_id(thread_id)
        blob = await self._redis.get(self._key(thread_id, "ckpt"))
        if blob is None:
            return None
        header, _, data = _bytes(blob).partition(b"\n")
        return Checkpoint(seq=int(header), data=data)

    async def save_checkpoint(self, thread_id: str, checkpoint: Checkpoint) -> None:
        validate_thread_id(thread_id)
        if type(checkpoint.seq) is not int or checkpoint.seq < 0:
            raise ValueError("checkpoint seq must be a non-negative int")
        if not isinstance(checkpoint.data, bytes):
            raise TypeError("checkpoint data must be bytes")
        blob = b"%d\n" % checkpoint.seq + checkpoint.data
        await self._redis.set(self._key(thread_id, "ckpt"), blob)


# The client runs without decode_responses, so replies are bytes; redis-py types them
# as bytes or str (its typing cannot follow that option), hence these narrowings.


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise StoreError(f"unexpected Redis reply {value!r}")


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise StoreError(f"unexpected Redis reply {value!r}")


def _seq_of(entry_id: object) -> int:
    """The seq of a log stream entry id, ``0-<seq>``."""
    return int(_text(entry_id).split("-")[1])


def _info_from_hash(thread_id: str, fields: Mapping[Any, Any]) -> ThreadInfo | None:
    seq = int(fields.get(b"seq", 0))
    if seq == 0:
        return None
    ts = fields.get(b"ts")
    return ThreadInfo(thread_id, seq, int(fields.get(b"bytes", 0)), int(ts) if ts else None)
