"""A shared store on Redis, for several gateway replicas.

Keys, with ``P`` the prefix and ``T`` the thread id (the ``{T}`` hash tag keeps
one thread's keys in one cluster slot)::

    P:{T}:log     Stream; entry id ``0-<seq>``, field ``r`` = the stored JSON line
    P:{T}:info    Hash: seq (last seq), bytes (sum of line lengths + newlines), ts
    P:{T}:ckpt    String: ``<seq>\\n<data>`` (SET replaces it atomically)
    P:{T}:lease   the run lease and P:{T}:fence its token counter (:mod:`.lease`)
    P:threads     Sorted set of thread ids scored by last activity (ms)

Appends run one Lua script, which Redis executes atomically: it checks the
fencing token against the thread's run lease, reads the last seq, XADDs every
record of the batch with explicit ids and updates the info hash, so two
replicas can never assign the same seq and a replica that lost its lease can
never append. A fenced batch holding a terminal event (the lease holder's run
ends) marks the lease ``ended`` in the same script, so no reader sees the end
before the lease says it is closing. The script splices ``"seq":N`` into envelopes serialised by
Python, so stored lines are byte-identical to the file store's. ``wait_for`` is
served by one shared ``XREAD BLOCK`` per thread and process (:mod:`.watch`),
which wakes on an append from any replica.

Every key the script touches carries the thread's hash tag, so it runs on a
Redis Cluster as on a single server. The thread index lives in another slot: it
is updated by its own command *before* the append, so a thread with records is
always listed (a listed thread without records is skipped by ``list_threads``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agui_gateway.protocol.events import TERMINAL_TYPES
from agui_gateway.store.base import (
    Checkpoint,
    LeaseLost,
    NewEvent,
    SeqConflict,
    StoredRecord,
    StoreError,
    ThreadInfo,
    ThreadStore,
    validate_thread_id,
)
from agui_gateway.store.open_runs import OpenRunRepair, may_open, run_boundary
from agui_gateway.store.records import batch_digest, decode_record, encode_unsequenced, slice_event
from agui_gateway.store.redis.connect import (
    RedisClient,
    check_url,
    connect,
    persistence_warning,
    redact_url,
    uncancelled,
)
from agui_gateway.store.redis.lease import KIND_ENDED, RedisLeases
from agui_gateway.store.redis.outage import OutageClock
from agui_gateway.store.redis.run_index import REPAIR_LUA, OpenRunKeys
from agui_gateway.store.redis.watch import StreamWatch

_PAGE = 256  # records per XRANGE page: bounds memory to 256 records
DEFAULT_LEASE_TTL_S = 10.0

# KEYS: log, info, lease, open-run set. ARGV: ts, fencing token ('' for none), the lease's
# kind once the batch is stored ('' for unchanged), the run state it leaves ('open',
# 'closed', '' for unchanged), the expected first seq ('' for none), the batch's digest
# ('' for none), the thread id, the attempt id, then one unsequenced envelope per event.
# Returns {first seq}, or {0, first line, first seq} when this batch is stored already.
_APPEND_LUA = """
local function first_line(first)
  local at = redis.call('XRANGE', KEYS[1], '0-' .. first, '0-' .. first)
  if #at == 0 then return false end
  local fields = at[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'r' then return fields[i + 1] end
  end
  return false
end
-- The same call again (redis-py sends a command again when the connection drops before
-- its reply): the info hash remembers the last batch's attempt id and first seq.
local last = redis.call('HGET', KEYS[2], 'a')
if last then
  local attempt, first = string.match(last, '^(%x+):(%d+)$')
  if attempt == ARGV[8] then return {0, first_line(first), tonumber(first)} end
end
-- The stream's last id is the source of truth for seq (the hash mirrors it).
local seq = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then seq = tonumber(string.match(top[1][1], '^0%-(%d+)$')) end
if ARGV[5] ~= '' then
  local expected = tonumber(ARGV[5])
  if seq ~= expected - 1 then
    -- A repeated batch (its first reply was lost) is found by its digest, before the fence:
    -- reading it back writes nothing, whoever holds the lease now.
    if seq >= expected - 1 + (#ARGV - 8) then
      local at = redis.call('XRANGE', KEYS[1], '0-' .. ARGV[5], '0-' .. ARGV[5])
      if #at > 0 then
        local fields, line, digest = at[1][2], false, false
        for i = 1, #fields, 2 do
          if fields[i] == 'r' then line = fields[i + 1] elseif fields[i] == 'b' then digest = fields[i + 1] end
        end
        if digest == ARGV[6] then return {0, line, expected} end
      end
    end
    return redis.error_reply('SEQ ' .. string.format('%d', seq))
  end
end
local holder = redis.call('HGET', KEYS[3], 'token')
if holder ~= ARGV[2] and (holder or ARGV[2] ~= '') then
  return redis.error_reply('FENCED ' .. (holder and 'the thread is leased under another token' or 'no lease'))
end
if holder and ARGV[3] ~= '' then redis.call('HSET', KEYS[3], 'kind', ARGV[3]) end
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local first = seq + 1
for i = 9, #ARGV do
  seq = seq + 1
  local id = string.format('%d', seq)
  local line = '{"seq":' .. id .. ',' .. string.sub(ARGV[i], 2)
  if i == 9 and ARGV[6] ~= '' then
    redis.call('XADD', KEYS[1], '0-' .. id, 'r', line, 'b', ARGV[6])
  else
    redis.call('XADD', KEYS[1], '0-' .. id, 'r', line)
  end
  bytes = bytes + #line + 1
end
redis.call('HSET', KEYS[2], 'seq', string.format('%d', seq),
           'bytes', string.format('%d', bytes), 'ts', ARGV[1], 'a', ARGV[8] .. ':' .. string.format('%d', first))
if ARGV[4] == 'open' then redis.call('SADD', KEYS[4], ARGV[7])
elseif ARGV[4] == 'closed' then redis.call('SREM', KEYS[4], ARGV[7]) end
return {first}
"""


def _run_state_after(events: Sequence[NewEvent]) -> str:
    """What the batch leaves the thread's run in: 'open' or 'closed' after its last run
    boundary, '' when it has none (the index keeps the thread as it is)."""
    state = ""
    for new in events:
        boundary = run_boundary(new.event)
        if boundary is not None:
            state = "open" if boundary else "closed"
    return state


def _lease_kind_after(events: Sequence[NewEvent], fence: int | None) -> str:
    """The kind the batch leaves the lease in: ``ended`` when it stores the holder's terminal
    event (nothing of the run follows it), else unchanged ('')."""
    if fence is not None and any(new.event.get("type") in TERMINAL_TYPES for new in events):
        return KIND_ENDED
    return ""


@dataclass(frozen=True, slots=True)
class _SharedRead:
    """A read in flight that concurrent callers share, and how many appends preceded it."""

    appends: int
    result: asyncio.Future[int]


class RedisStore(ThreadStore):
    """The Redis Streams store. ``password`` is used when the URL carries none;
    ``lease_ttl_s`` is how long a run lease outlives its last renewal; ``replica_id``
    is recorded with the leases this process takes (None: a new id of its own, see
    :mod:`agui_gateway.store.lease`)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "agui",
        password: str | None = None,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
        replica_id: str | None = None,
    ) -> None:
        if not prefix or any(c in prefix for c in "{}"):
            raise ValueError("prefix must be non-empty and contain no '{' or '}'")
        check_url(url)
        if lease_ttl_s <= 0:
            raise ValueError("the lease ttl must be positive")
        if replica_id is not None and not replica_id.strip():
            raise ValueError("a replica id must not be blank")
        self.url = url
        self.prefix = prefix
        self.malformed_entries = 0  # stream entries that did not decode, skipped
        self.persistence_warning: str | None = None  # set by open()
        self.index_warning: str | None = None  # set by open(): threads the open-run index never saw
        self._password = password
        self._lease_ttl_s = lease_ttl_s
        # Without a stable id a process is a replica of its own: no other process shares its id.
        self.replica_id = replica_id if replica_id is not None else f"process-{uuid.uuid4().hex}"
        self._client: RedisClient | None = None
        self._blocking: RedisClient | None = None  # for XREAD BLOCK (see connect.py)
        self._append_script: Any = None
        self._repair_script: Any = None
        self._runs = OpenRunKeys(prefix, cluster=False)  # set for a Cluster by open()
        self.outages = OutageClock()  # when Redis last failed here (the leases' grace)
        self._watches: dict[str, StreamWatch] = {}
        self._appends = 0  # appends this process completed (see last_seq)
        self._seq_reads: dict[str, _SharedRead] = {}  # a last-seq read in flight, per thread

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._client is None:
            client = await connect(self.url, self._password)
            try:
                self._blocking = await connect(self.url, self._password, blocking_reads=True)
            except StoreError:
                await client.aclose()
                raise
            self._append_script = client.register_script(_APPEND_LUA)
            self._repair_script = client.register_script(REPAIR_LUA)
            self._runs = OpenRunKeys(self.prefix, cluster=isinstance(client, RedisCluster))
            self.leases = RedisLeases(
                client, self._key, f"{self.prefix}:leases", self._lease_ttl_s, self.replica_id, self.outages
            )
            self._client = client
            self.persistence_warning = await persistence_warning(client)
            self.index_warning = await self._check_index_built()
        await self.ping()

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            self.outages.failed()
            raise StoreError(f"Redis at {redact_url(self.url)} does not answer: {exc}") from exc

    async def close(self) -> None:
        for watch in self._watches.values():
            watch.stop()
        self._watches.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._blocking is not None:
            await self._blocking.aclose()
            self._blocking = None

    @property
    def _redis(self) -> RedisClient:
        if self._client is None:
            raise StoreError("RedisStore is not open; call await store.open() first")
        return self._client

    def _failed(self, what: str, exc: BaseException) -> StoreError:
        self.outages.failed()
        return StoreError(f"{what} in Redis failed: {exc}")

    @property
    def is_cluster(self) -> bool:
        return isinstance(self._client, RedisCluster)

    def _key(self, thread_id: str, kind: str) -> str:
        return f"{self.prefix}:{{{thread_id}}}:{kind}"

    @property
    def _index_key(self) -> str:
        return f"{self.prefix}:threads"

    # -- appends and reads ---------------------------------------------------------

    async def append(
        self,
        thread_id: str,
        events: Sequence[NewEvent],
        *,
        fence: int | None = None,
        expect_seq: int | None = None,
    ) -> list[StoredRecord]:
        validate_thread_id(thread_id)
        if expect_seq is not None and (type(expect_seq) is not int or expect_seq < 1):
            raise ValueError("expect_seq must be a positive int")
        if not events:
            return []
        ts = time.time_ns() // 1_000_000
        envelopes = [encode_unsequenced(event, ts) for event in events]
        digest = batch_digest(events) if expect_seq is not None else ""
        run_state = _run_state_after(events)
        keys = [self._key(thread_id, "log"), self._key(thread_id, "info"), self._key(thread_id, "lease")]
        try:
            # The index first (another slot, so not in the script): a thread with records is always listed.
            await uncancelled(self._redis.zadd(self._index_key, {thread_id: ts}))
            if self._runs.cluster and may_open(new.event for new in events):
                # Likewise the open-run shard of the thread's slot: listed before it holds the thread.
                await uncancelled(self._redis.sadd(self._runs.registry, self._runs.set_for(thread_id)))
            reply = await uncancelled(
                self._append_script(
                    keys=[*keys, self._runs.set_for(thread_id)],
                    args=[
                        ts,
                        "" if fence is None else fence,
                        _lease_kind_after(events, fence),
                        run_state,
                        "" if expect_seq is None else expect_seq,
                        digest,
                        thread_id,
                        uuid.uuid4().hex,  # the same in redis-py's own repeats of this call
                        *envelopes,
                    ],
                    client=self._redis,
                )
            )
        except aioredis.ResponseError as exc:
            message = str(exc)
            if message.startswith("FENCED"):
                raise LeaseLost(f"append to {thread_id!r} refused: {message[7:]}") from exc
            if message.startswith("SEQ "):
                last = int(message[4:])
                raise SeqConflict(
                    f"append to {thread_id!r} expected to start at seq {expect_seq}, but the log ends at "
                    f"{last} without this batch there",
                    last,
                ) from exc
            self.outages.failed()  # LOADING, READONLY, MASTERDOWN...: Redis cannot serve now
            raise StoreError(f"append to Redis failed: {exc}") from exc
        except (aioredis.RedisError, OSError) as exc:
            self.outages.failed()
            raise StoreError(f"append to Redis failed: {exc}") from exc
        first = int(reply[0])
        if first == 0:  # this very batch, stored by an earlier attempt: as it was stored
            stored = decode_record(_bytes(reply[1])) if reply[1] else None
            first, ts = int(reply[2]), stored.ts if stored is not None else ts
        self._appends += 1
        watch = self._watches.get(thread_id)
        if watch is not None:  # wake local waiters without waiting for their XREAD
            watch.advance(first + len(events) - 1)
        return [StoredRecord(first + i, e.run_id, ts, e.source, e.event, e.annotation) for i, e in enumerate(events)]

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
            try:
                page = await uncancelled(self._redis.xrange(key, min=start, max="+", count=_PAGE)) or []
            except (aioredis.RedisError, OSError) as exc:
                raise self._failed("reading the log", exc) from exc
            if page:
                yield page
            if len(page) < _PAGE:
                return
            start = f"0-{_seq_of(page[-1][0]) + 1}"

    async def last_seq(self, thread_id: str) -> int:
        """The thread's latest seq; concurrent calls share one round trip.

        A thousand subscribers connecting at once each ask for it (their replay, then their
        tail): one HGET each queued them all on the command pool, and the first events of
        a run that started meanwhile waited behind them. A caller joins a read only if no
        append of this process completed since that read was sent, so a caller always sees
        its own appends.
        """
        validate_thread_id(thread_id)
        shared = self._seq_reads.get(thread_id)
        if shared is None or shared.appends != self._appends:
            shared = _SharedRead(self._appends, asyncio.ensure_future(self._read_last_seq(thread_id)))
            self._seq_reads[thread_id] = shared
            shared.result.add_done_callback(partial(self._seq_read_done, thread_id, shared))
        return await asyncio.shield(shared.result)

    async def _read_last_seq(self, thread_id: str) -> int:
        try:
            return int(await self._redis.hget(self._key(thread_id, "info"), "seq") or 0)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("reading the last seq", exc) from exc

    def _seq_read_done(self, thread_id: str, shared: _SharedRead, result: asyncio.Future[int]) -> None:
        if self._seq_reads.get(thread_id) is shared:
            del self._seq_reads[thread_id]
        if not result.cancelled():
            result.exception()  # read: every caller may have gone

    async def wait_for(self, thread_id: str, after: int, timeout: float) -> int:
        validate_thread_id(thread_id)
        latest = await self.last_seq(thread_id)
        if latest > after or timeout <= 0:
            return latest
        watch = self._watches.get(thread_id)
        if watch is None:
            assert self._blocking is not None
            watch = StreamWatch(
                self._blocking,
                self._key(thread_id, "log"),
                lambda: self.last_seq(thread_id),
                lambda idle: self._forget_watch(thread_id, idle),
                self.outages.failed,
            )
            self._watches[thread_id] = watch
        return await watch.wait(after, latest, timeout)

    def _forget_watch(self, thread_id: str, watch: StreamWatch) -> None:
        if self._watches.get(thread_id) is watch and watch.waiters == 0:
            del self._watches[thread_id]

    # -- the open-run index ----------------------------------------------------------

    async def open_run_threads(self) -> list[str]:
        try:
            if not self._runs.cluster:
                members = await uncancelled(self._redis.smembers(self._runs.set_for("-")))
            else:
                shards = sorted(_text(k) for k in await uncancelled(self._redis.smembers(self._runs.registry)))
                members = set()
                for i in range(0, len(shards), _PAGE):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for shard in shards[i : i + _PAGE]:
                            pipe.smembers(shard)
                        for found in await pipe.execute():
                            members.update(found)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("listing the open runs", exc) from exc
        return sorted(_text(m) for m in members)

    async def _check_index_built(self) -> str | None:
        """A warning when the store holds threads written before the open-run index existed.

        The index is kept from the first append of a version that has it; a store that held
        threads before has it built by ``agui-gateway recover --full`` (which marks it
        built), not at a start (replicas start together, and a scan costs O(threads)).
        Until then its runs left open are still found through their lapsed leases.
        """
        try:
            if await self._redis.exists(self._runs.built):
                return None
            if await self._redis.zcard(self._index_key) == 0:  # a new store: built from its first append
                await self._redis.set(self._runs.built, b"1", nx=True)
                return None
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("checking the open-run index", exc) from exc
        return (
            "this Redis holds threads written before the open-run index existed: run "
            "`agui-gateway recover --full` once so that a start finds the runs they left open"
        )

    async def repair_open_runs(self) -> OpenRunRepair:
        before = set(await self.open_run_threads())
        try:
            listed = {_text(t) for t in await self._redis.zrange(self._index_key, 0, -1)}
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("listing threads", exc) from exc
        threads = sorted(listed | before)
        for thread_id in threads:
            while True:  # until the log holds still between the read and the update
                last_seq, is_open = await self._read_run_state(thread_id)
                if self._runs.cluster and is_open:
                    await uncancelled(self._redis.sadd(self._runs.registry, self._runs.set_for(thread_id)))
                try:
                    applied, _ = await uncancelled(
                        self._repair_script(
                            keys=[self._key(thread_id, "log"), self._runs.set_for(thread_id)],
                            args=[last_seq, "open" if is_open else "closed", thread_id],
                            client=self._redis,
                        )
                    )
                except (aioredis.RedisError, OSError) as exc:
                    raise self._failed("repairing the open-run index", exc) from exc
                if applied:
                    break
        after = set(await self.open_run_threads())
        try:
            await self._redis.set(self._runs.built, b"1")
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("marking the open-run index built", exc) from exc
        self.index_warning = None
        return OpenRunRepair(
            len(threads), tuple(sorted(after)), tuple(sorted(after - before)), tuple(sorted(before - after))
        )

    async def _read_run_state(self, thread_id: str) -> tuple[int, bool]:
        """The log's last seq and whether its last run boundary opens a run, read backwards."""
        key = self._key(thread_id, "log")
        last_seq, end = 0, "+"
        while True:
            try:
                page = await uncancelled(self._redis.xrevrange(key, max=end, min="-", count=_PAGE)) or []
            except (aioredis.RedisError, OSError) as exc:
                raise self._failed("reading the log", exc) from exc
            for entry_id, fields in page:
                seq = _seq_of(entry_id)
                last_seq = last_seq or seq
                record = decode_record(_bytes(fields.get(b"r", b""))) if fields else None
                boundary = run_boundary(record.event) if record is not None else None
                if boundary is not None:
                    return last_seq, boundary
            if len(page) < _PAGE:
                return last_seq, False
            end = f"0-{_seq_of(page[-1][0]) - 1}"

    # -- listing -------------------------------------------------------------------

    async def list_threads(self) -> list[ThreadInfo]:
        try:
            thread_ids = sorted(_text(t) for t in await self._redis.zrange(self._index_key, 0, -1))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("listing threads", exc) from exc
        infos = []
        for i in range(0, len(thread_ids), _PAGE):
            chunk = thread_ids[i : i + _PAGE]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for thread_id in chunk:
                        pipe.hgetall(self._key(thread_id, "info"))
                    results = await pipe.execute()
            except (aioredis.RedisError, OSError) as exc:
                raise self._failed("listing threads", exc) from exc
            for thread_id, fields in zip(chunk, results, strict=True):
                info = _info_from_hash(thread_id, fields)
                if info is not None:
                    infos.append(info)
        return infos

    async def thread_info(self, thread_id: str) -> ThreadInfo | None:
        validate_thread_id(thread_id)
        try:
            fields = await uncancelled(self._redis.hgetall(self._key(thread_id, "info")))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("reading thread info", exc) from exc
        return _info_from_hash(thread_id, fields)

    # -- checkpoints -----------------------------------------------------------------

    async def load_checkpoint(self, thread_id: str) -> Checkpoint | None:
        validate_thread_id(thread_id)
        try:
            blob = await uncancelled(self._redis.get(self._key(thread_id, "ckpt")))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("loading the checkpoint", exc) from exc
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
        try:
            await uncancelled(self._redis.set(self._key(thread_id, "ckpt"), blob))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("saving the checkpoint", exc) from exc


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
