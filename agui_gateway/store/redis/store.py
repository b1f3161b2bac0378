"""A shared store on Redis, for several gateway replicas.

Keys, with ``P`` the prefix and ``T`` the thread id (the ``{T}`` hash tag keeps
one thread's keys in one cluster slot)::

    P:{T}:log     Stream; entry id ``0-<seq>``, field ``r`` = the stored JSON line
    P:{T}:info    Hash: seq (last seq), bytes (sum of line lengths + newlines), ts, epoch,
                  a (the last append's attempt id and first seq)
    P:{T}:ckpt    String: ``<seq> <epoch>\\n<data>`` (SET replaces it atomically; one
                  saved before epochs has ``<seq>\\n``: it is a legacy thread's)
    P:{T}:lease   the run lease and P:{T}:fence its token counter (:mod:`.lease`)
    P:{T}:deleted the deletion notice: a stream the delete writes, expiring after a minute
    P:{T}:import:<hex>  an import's staged records, renamed to P:{T}:log on commit
    P:threads     Sorted set of thread ids scored by last activity (ms)
    P:open-runs   the open-run index (sharded by slot on a Cluster, :mod:`.run_index`)

The thread's epoch is set by the append that creates its log (the stream was empty)
and deleted with it; a thread stored before epochs has none and reads as
``LEGACY_EPOCH``. A delete is one script over every key of the thread, the lease and
the fence counter included, and it takes the thread out of the open-run index in the
same step, so a replica still holding the lease gets ``LeaseLost`` from its next append,
and a repeat of a batch stored before the delete (``expect_seq``) finds nothing of it and
stores nothing. With retention (``retention_s``) every append, checkpoint save,
lease grant and renewal sets the thread's keys to expire ``retention`` after it, so
Redis forgets a thread nobody touched for that long even with no gateway running.

Appends run one Lua script, which Redis executes atomically: it checks the
fencing token against the thread's run lease, reads the last seq, XADDs every
record of the batch with explicit ids, updates the info hash and the thread's
open-run index entry, so two replicas can never assign the same seq, a replica that
lost its lease can never append, and the index never disagrees with the log.
The same script answers a repeated append (the same attempt id, or ``expect_seq`` and
the batch's digest) with the records first stored, before the fence is checked. A
fenced batch holding a terminal event (the lease holder's run ends) marks the lease
``ended`` in the same script, so no reader sees the end before the lease says it is
closing. The script splices ``"seq":N`` into envelopes serialised by Python, so stored
lines are byte-identical to the file store's. ``wait_for`` is
served by one shared ``XREAD BLOCK`` per thread and process (:mod:`.watch`),
which wakes on an append from any replica.

Every key the script touches carries the thread's hash tag, so it runs on a
Redis Cluster as on a single server. The thread index lives in another slot: it
is updated by its own command *before* the append, so a thread with records is
always listed (a listed thread without records is skipped by ``list_threads``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from agui_gateway.protocol.events import TERMINAL_TYPES
from agui_gateway.store.base import (
    LEGACY_EPOCH,
    Checkpoint,
    Deletion,
    IdlePage,
    IdleThread,
    LeaseLost,
    NewEvent,
    SeqConflict,
    StoredRecord,
    StoreError,
    StoreUnavailable,
    ThreadDeleted,
    ThreadExists,
    ThreadHead,
    ThreadImport,
    ThreadInfo,
    ThreadStore,
    new_epoch,
    validate_epoch,
    validate_thread_id,
)
from agui_gateway.store.open_runs import OpenRunRepair, may_open, run_boundary
from agui_gateway.store.records import ImportedLines, batch_digest, decode_record, encode_unsequenced, slice_event
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
from agui_gateway.store.redis.watch import Head, StreamWatch

_PAGE = 256  # records per XRANGE page: bounds memory to 256 records
DEFAULT_LEASE_TTL_S = 10.0

# KEYS: log, info, lease, ckpt, fence, open-run set. ARGV: ts, fencing token ('' for none),
# the lease's kind once the batch is stored ('' for unchanged), the run state it leaves
# ('open', 'closed', '' for unchanged), the expected first seq ('' for none), the batch's
# digest ('' for none), the thread id, the attempt id, the epoch if this append creates the
# thread, the retention (ms, '' for none), then one unsequenced envelope per event.
# Returns {first seq, epoch}, or {0, epoch, first line, first seq} when this batch is stored
# already. The checks come in this order, and none writes anything: the same attempt again;
# the expected seq (a repeated batch is read back); the fence. So a batch repeated after the
# thread was deleted finds neither its attempt nor its records: with an expected seq past 1
# it gets SEQ (the log is empty, or another incarnation's), under a token FENCED (the delete
# took the lease and the fence): it does not create the thread again.
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
  if attempt == ARGV[8] then
    return {0, redis.call('HGET', KEYS[2], 'epoch') or '0', first_line(first), tonumber(first)}
  end
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
    if seq >= expected - 1 + (#ARGV - 10) then
      local at = redis.call('XRANGE', KEYS[1], '0-' .. ARGV[5], '0-' .. ARGV[5])
      if #at > 0 then
        local fields, line, digest = at[1][2], false, false
        for i = 1, #fields, 2 do
          if fields[i] == 'r' then line = fields[i + 1] elseif fields[i] == 'b' then digest = fields[i + 1] end
        end
        if digest == ARGV[6] then return {0, redis.call('HGET', KEYS[2], 'epoch') or '0', line, expected} end
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
local epoch
if seq == 0 then
  -- The thread is created (or its log expired before its other keys): a new incarnation.
  redis.call('DEL', KEYS[2], KEYS[4])
  bytes = 0
  epoch = ARGV[9]
  redis.call('HSET', KEYS[2], 'epoch', epoch)
else
  epoch = redis.call('HGET', KEYS[2], 'epoch') or '0'
end
local first = seq + 1
for i = 11, #ARGV do
  seq = seq + 1
  local id = string.format('%d', seq)
  local line = '{"seq":' .. id .. ',' .. string.sub(ARGV[i], 2)
  if i == 11 and ARGV[6] ~= '' then
    redis.call('XADD', KEYS[1], '0-' .. id, 'r', line, 'b', ARGV[6])
  else
    redis.call('XADD', KEYS[1], '0-' .. id, 'r', line)
  end
  bytes = bytes + #line + 1
end
redis.call('HSET', KEYS[2], 'seq', string.format('%d', seq),
           'bytes', string.format('%d', bytes), 'ts', ARGV[1], 'a', ARGV[8] .. ':' .. string.format('%d', first))
if ARGV[4] == 'open' then redis.call('SADD', KEYS[6], ARGV[7])
elseif ARGV[4] == 'closed' then redis.call('SREM', KEYS[6], ARGV[7]) end
if ARGV[10] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[10])
  redis.call('PEXPIRE', KEYS[2], ARGV[10])
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
  redis.call('PEXPIRE', KEYS[5], ARGV[10])
end
return {first, epoch}
"""

# KEYS: log, info, ckpt, lease, fence, deleted, open-run set. ARGV: idle before (ms, '' for
# no check), '1' to delete even under a live lease, the notice's lifetime (ms), the thread id.
# The thread leaves the open-run index in the same step: its log, with whatever run it left
# open, is gone (an append that creates it again puts it back, in its own script). A retention delete
# (idle before) leaves no notice: a sweep deletes thousands of threads nobody watches,
# and a notice costs about what a small thread does; a waiter still learns of it at its
# next wait_for, whose head read no longer finds the epoch it follows.
_DELETE_LUA = """
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[4]) == 1 then return 'leased' end
local info = redis.call('HMGET', KEYS[2], 'seq', 'ts', 'epoch')
local had_log = redis.call('EXISTS', KEYS[1]) == 1
if ARGV[1] ~= '' and had_log and info[2] and tonumber(info[2]) >= tonumber(ARGV[1]) then return 'active' end
local removed = redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
redis.call('SREM', KEYS[7], ARGV[4])
if removed > 0 and ARGV[1] == '' then
  redis.call('XADD', KEYS[6], '*', 'epoch', info[3] or (had_log and '0' or ''))
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
end
return had_log and 'deleted' or 'missing'
"""

# KEYS: ckpt, info, log. ARGV: seq, data. The checkpoint carries the thread's epoch as it is
# now and expires with the log; one beyond the log is dropped.
_SAVE_CHECKPOINT_LUA = """
local last = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
if last == 0 or tonumber(ARGV[1]) > last or redis.call('EXISTS', KEYS[3]) == 0 then
  return 0  -- it covers no records of this thread (deleted since, or another incarnation)
end
local epoch = redis.call('HGET', KEYS[2], 'epoch') or '0'
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch .. '\\n' .. ARGV[2])
local ttl = redis.call('PTTL', KEYS[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
"""

# KEYS: staged records, log, info, ckpt, lease, fence, deleted, open-run set. ARGV: '1' to
# replace, epoch, last seq, bytes, last ts, checkpoint ('' for none, else the stored value),
# retention (ms, '' for none), the notice's lifetime (ms), the thread id, 'open' when the
# imported log ends in an open run (the thread goes into the open-run index, for the next
# recovery to close it, as one a crash left open) else ''.
_COMMIT_IMPORT_LUA = """
local exists = redis.call('EXISTS', KEYS[2]) == 1
if exists and ARGV[1] ~= '1' then
  redis.call('DEL', KEYS[1])
  return 'exists'
end
local old_epoch = redis.call('HGET', KEYS[3], 'epoch') or '0'
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
if exists then
  redis.call('XADD', KEYS[7], '*', 'epoch', old_epoch)
  redis.call('PEXPIRE', KEYS[7], ARGV[8])
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[3], 'seq', ARGV[3], 'bytes', ARGV[4], 'ts', ARGV[5], 'epoch', ARGV[2])
if ARGV[6] ~= '' then redis.call('SET', KEYS[4], ARGV[6]) end
if ARGV[10] == 'open' then redis.call('SADD', KEYS[8], ARGV[9]) else redis.call('SREM', KEYS[8], ARGV[9]) end
if ARGV[7] ~= '' then
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
end
return 'imported'
"""

# KEYS: staged records. ARGV: the seq of the first line, the staging key's lifetime (ms), lines.
_STAGE_LUA = """
local seq = tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '0-' .. string.format('%d', seq + i - 3), 'r', ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_STAGE_BYTES = 1 << 20  # lines staged per script call (at least one)

DELETION_NOTICE_MS = 60_000  # how long a deletion notice lives: far beyond one XREAD block
_IMPORT_STAGING_MS = 3_600_000  # an import a crash cut short is forgotten after an hour
_DATA_KINDS = ("log", "info", "ckpt", "fence")  # the keys retention expires (the lease has its own ttl)


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
    result: asyncio.Future[Head]


class RedisStore(ThreadStore):
    """The Redis Streams store. ``password`` is used when the URL carries none;
    ``lease_ttl_s`` is how long a run lease outlives its last renewal; ``replica_id``
    is recorded with the leases this process takes (None: a new id of its own, see
    :mod:`agui_gateway.store.lease`); ``retention_s`` (None: off) is how long a thread's
    keys outlive its last activity (append, or lease grant or renewal)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "agui",
        password: str | None = None,
        lease_ttl_s: float = DEFAULT_LEASE_TTL_S,
        replica_id: str | None = None,
        retention_s: float | None = None,
    ) -> None:
        if retention_s is not None and retention_s < 2 * lease_ttl_s:
            raise ValueError("the retention must be at least twice the lease ttl")
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
        self.retention_ms = None if retention_s is None else int(retention_s * 1000)
        self._retention_arg = "" if self.retention_ms is None else str(self.retention_ms)
        # Without a stable id a process is a replica of its own: no other process shares its id.
        self.replica_id = replica_id if replica_id is not None else f"process-{uuid.uuid4().hex}"
        self._client: RedisClient | None = None
        self._blocking: RedisClient | None = None  # for XREAD BLOCK (see connect.py)
        self._append_script: Any = None
        self._repair_script: Any = None
        self._runs = OpenRunKeys(prefix, cluster=False)  # set for a Cluster by open()
        self.outages = OutageClock()  # when Redis last failed here (the leases' grace)
        self._delete_script: Any = None
        self._save_checkpoint_script: Any = None
        self._commit_import_script: Any = None
        self._stage_script: Any = None
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
            self._delete_script = client.register_script(_DELETE_LUA)
            self._save_checkpoint_script = client.register_script(_SAVE_CHECKPOINT_LUA)
            self._commit_import_script = client.register_script(_COMMIT_IMPORT_LUA)
            self._stage_script = client.register_script(_STAGE_LUA)
            self.leases = RedisLeases(
                client,
                self._key,
                f"{self.prefix}:leases",
                self._lease_ttl_s,
                self.replica_id,
                self.outages,
                floor_key=f"{self.prefix}:fences",
                data_kinds=_DATA_KINDS,
                retention_ms=self.retention_ms,
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
            raise StoreUnavailable(f"Redis at {redact_url(self.url)} does not answer: {exc}") from exc

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
        return StoreUnavailable(f"{what} in Redis failed: {exc}")

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
        keys = [self._key(thread_id, kind) for kind in ("log", "info", "lease", "ckpt", "fence")]
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
                        new_epoch(),
                        self._retention_arg,
                        *envelopes,
                    ],
                    client=self._redis,
                )
            )
            first, epoch = int(reply[0]), _text(reply[1])
            if first == 1:  # created: listed again, in case a delete's unlisting crossed the first zadd
                await uncancelled(self._redis.zadd(self._index_key, {thread_id: ts}))
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
            raise StoreUnavailable(f"append to Redis failed: {exc}") from exc
        except (aioredis.RedisError, OSError) as exc:
            self.outages.failed()
            raise StoreUnavailable(f"append to Redis failed: {exc}") from exc
        if first == 0:  # this very batch, stored by an earlier attempt: as it was stored
            stored = decode_record(_bytes(reply[2])) if reply[2] else None
            first, ts = int(reply[3]), stored.ts if stored is not None else ts
        self._appends += 1
        watch = self._watches.get(thread_id)
        if watch is not None:  # wake local waiters without waiting for their XREAD
            watch.advance(first + len(events) - 1, epoch)
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
        """The stored lines; those in the append script's one shape are not decoded."""
        async with aclosing(self._pages(thread_id, after)) as pages:
            async for page in pages:
                for _, fields in page:
                    line = fields.get(b"r", b"")
                    if slice_event(line) is None and decode_record(line) is None:
                        self.malformed_entries += 1
                        continue
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
        """The thread's latest seq; concurrent calls share one round trip (see :meth:`_head`)."""
        return (await self._head(thread_id))[1]

    async def head(self, thread_id: str) -> ThreadHead | None:
        epoch, seq = await self._head(thread_id)
        return ThreadHead(epoch, seq) if epoch is not None and seq > 0 else None

    async def _head(self, thread_id: str) -> Head:
        """The thread's epoch and latest seq (one HMGET); concurrent calls share one round trip.

        A thousand subscribers connecting at once each ask for it (their replay, then their
        tail): one HGET each queued them all on the command pool, and the first events of
        a run that started meanwhile waited behind them. A caller joins a read only if no
        append of this process completed since that read was sent, so a caller always sees
        its own appends.
        """
        validate_thread_id(thread_id)
        shared = self._seq_reads.get(thread_id)
        if shared is None or shared.appends != self._appends:
            shared = _SharedRead(self._appends, asyncio.ensure_future(self._read_head(thread_id)))
            self._seq_reads[thread_id] = shared
            shared.result.add_done_callback(partial(self._seq_read_done, thread_id, shared))
        return await asyncio.shield(shared.result)

    async def _read_head(self, thread_id: str) -> Head:
        try:
            seq, epoch = await self._redis.hmget(self._key(thread_id, "info"), ["seq", "epoch"])
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("reading the last seq", exc) from exc
        last = int(seq or 0)
        if last == 0:
            return None, 0
        return (_text(epoch) if epoch is not None else LEGACY_EPOCH), last

    def _seq_read_done(self, thread_id: str, shared: _SharedRead, result: asyncio.Future[Head]) -> None:
        if self._seq_reads.get(thread_id) is shared:
            del self._seq_reads[thread_id]
        if not result.cancelled():
            result.exception()  # read: every caller may have gone

    async def wait_for(self, thread_id: str, after: int, timeout: float, *, epoch: str | None = None) -> int:
        validate_thread_id(thread_id)
        current, latest = await self._head(thread_id)
        if epoch is not None and current != epoch:
            raise ThreadDeleted(f"thread {thread_id!r} was deleted")
        if latest > after or timeout <= 0:
            return latest
        watch = self._watches.get(thread_id)
        if watch is None:
            assert self._blocking is not None
            watch = StreamWatch(
                self._blocking,
                self._key(thread_id, "log"),
                self._key(thread_id, "deleted"),
                lambda: self._read_head(thread_id),
                lambda idle: self._forget_watch(thread_id, idle),
                self.outages.failed,
            )
            self._watches[thread_id] = watch
        current, latest = await watch.wait(after, timeout, epoch)
        if epoch is not None and current != epoch:
            raise ThreadDeleted(f"thread {thread_id!r} was deleted")
        return latest

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
            async with self._redis.pipeline(transaction=True) as pipe:  # one slot: a MULTI is fine
                pipe.get(self._key(thread_id, "ckpt"))
                pipe.hmget(self._key(thread_id, "info"), ["seq", "epoch"])
                blob, (seq, epoch) = await uncancelled(pipe.execute())
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("loading the checkpoint", exc) from exc
        if blob is None:
            return None
        header, _, data = _bytes(blob).partition(b"\n")
        saved_seq, _, saved_epoch = header.decode().partition(" ")
        current = _text(epoch) if epoch is not None else (LEGACY_EPOCH if int(seq or 0) else "")
        # One of another incarnation of the thread (saved after a delete) is not this one's.
        if (saved_epoch or (LEGACY_EPOCH if current == LEGACY_EPOCH else "")) != current:
            return None
        return Checkpoint(seq=int(saved_seq), data=data)

    async def save_checkpoint(self, thread_id: str, checkpoint: Checkpoint) -> None:
        validate_thread_id(thread_id)
        if type(checkpoint.seq) is not int or checkpoint.seq < 0:
            raise ValueError("checkpoint seq must be a non-negative int")
        if not isinstance(checkpoint.data, bytes):
            raise TypeError("checkpoint data must be bytes")
        keys = [self._key(thread_id, "ckpt"), self._key(thread_id, "info"), self._key(thread_id, "log")]
        try:
            await uncancelled(
                self._save_checkpoint_script(keys=keys, args=[checkpoint.seq, checkpoint.data], client=self._redis)
            )
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("saving the checkpoint", exc) from exc

    # -- the data lifecycle -----------------------------------------------------------

    def _thread_keys(self, thread_id: str) -> list[str]:
        kinds = ("log", "info", "ckpt", "lease", "fence", "deleted")
        return [*(self._key(thread_id, kind) for kind in kinds), self._runs.set_for(thread_id)]

    async def delete_thread(
        self, thread_id: str, *, idle_before_ms: int | None = None, even_if_leased: bool = False
    ) -> Deletion:
        validate_thread_id(thread_id)
        args = [
            "" if idle_before_ms is None else idle_before_ms,
            "1" if even_if_leased else "",
            DELETION_NOTICE_MS,
            thread_id,
        ]
        try:
            outcome = _text(
                await uncancelled(self._delete_script(keys=self._thread_keys(thread_id), args=args, client=self._redis))
            )
            if outcome in ("deleted", "missing"):
                await self._unlist(thread_id)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failed("deleting the thread", exc) from exc
        watch = self._watches.get(thread_id)
        if watch is not None and outcome == "deleted":
            watch.forget_epoch()
        if outcome not in ("deleted", "missing", "leased", "active"):
            raise StoreError(f"unexpected reply {outcome!r} of the delete script")
        return cast(Deletion, outcome)

    async def _unlist(self, thread_id: str) -> None:
        """Drop the thread from the indexes (other slots: not in the delete's script).

        An append that created the thread again meanwhile lists it once more after its
        script; one whose script ran before this ZREM is listed again here."""
        await uncancelled(self._redis.zrem(self._index_key, thread_id))
        await uncancelled(self._redis.zrem(f"{self.prefix}:leases", thread_id))
        ts = await uncancelled(self._redis.hget(self._key(thread_id, "info"), "ts"))
        if ts is not None:
            await uncancelled(self._redis.zadd(self._index_key, {thread_id: int(ts)}))

    async def idle_threads(self, before_ms: int, *, limit: int = 256, cursor: str | None = None) -> IdlePage:
        """From the thread index, oldest activity first (ties by id, as Redis orders them).

        The cursor is the page's last thread and its activity; the next page starts after
        it, so whatever the sweep deleted or kept does not move it. Index entries of
        threads whose keys expired are found too: deleting one unlists it.
        """
        if limit < 1:
            raise ValueError("limit must be positive")
        after_ms, after_id = -1, ""
        if cursor:
            ms, _, after_id = cursor.partition(":")
            after_ms = int(ms)
        threads: list[IdleThread] = []
        offset = 0
        while len(threads) < limit:
            try:
                found = await uncancelled(
                    self._redis.zrangebyscore(
                        self._index_key,
                        "-inf" if after_ms < 0 else after_ms,
                        f"({before_ms}",
                        start=offset,
                        num=limit,
                        withscores=True,
                    )
                )
            except (aioredis.RedisError, OSError) as exc:
                raise self._failed("listing idle threads", exc) from exc
            page = [(_text(member), int(score)) for member, score in cast(list[Any], found)]
            offset += len(page)
            # Those with the cursor's activity up to the cursor's id were in the last page.
            threads.extend(IdleThread(t, ms) for t, ms in page if ms > after_ms or (ms == after_ms and t > after_id))
            if len(page) < limit and len(threads) <= limit:
                return IdlePage(threads, None)
        last = threads[limit - 1]
        return IdlePage(threads[:limit], f"{last.last_activity_ms}:{last.thread_id}")

    def import_thread(self, thread_id: str, epoch: str) -> ThreadImport:
        validate_thread_id(thread_id)
        validate_epoch(epoch)
        return _RedisImport(self, thread_id, epoch)


class _RedisImport(ThreadImport):
    """Stages the records in a stream of the thread's slot, renamed to its log on commit."""

    def __init__(self, store: RedisStore, thread_id: str, epoch: str) -> None:
        self._store = store
        self._thread_id = thread_id
        self._epoch = epoch
        self._lines = ImportedLines(thread_id)
        self._staging = store._key(thread_id, f"import:{uuid.uuid4().hex}")
        self._done = False

    async def add(self, lines: Sequence[bytes]) -> None:
        first = self._lines.last_seq + 1
        checked = self._lines.check(lines)
        if self._done:
            raise StoreError("this import is already committed or aborted")
        if not checked:
            return
        store = self._store
        try:
            start = 0
            while start < len(checked):
                end, size = start, 0
                while end < len(checked) and (end == start or size + len(checked[end]) <= _STAGE_BYTES):
                    size += len(checked[end])
                    end += 1
                await uncancelled(
                    store._stage_script(
                        keys=[self._staging],
                        args=[first + start, _IMPORT_STAGING_MS, *checked[start:end]],
                        client=store._redis,
                    )
                )
                start = end
        except (aioredis.RedisError, OSError) as exc:
            await self.abort()
            raise store._failed(f"importing {self._thread_id!r}", exc) from exc

    async def commit(self, checkpoint: Checkpoint | None = None, *, replace: bool = False) -> None:
        self._lines.check_end(checkpoint)
        if self._done:
            raise StoreError("this import is already committed or aborted")
        self._done = True
        store, thread_id, lines = self._store, self._thread_id, self._lines
        blob = b"" if checkpoint is None else b"%d %s\n" % (checkpoint.seq, self._epoch.encode()) + checkpoint.data
        keys = [self._staging, *(store._key(thread_id, kind) for kind in ("log", "info", "ckpt", "lease", "fence"))]
        keys += [store._key(thread_id, "deleted"), store._runs.set_for(thread_id)]
        args = [
            "1" if replace else "",
            self._epoch,
            lines.last_seq,
            lines.bytes,
            lines.last_ts or 0,
            blob,
            store._retention_arg,
            DELETION_NOTICE_MS,
            thread_id,
            "open" if lines.open_run else "",
        ]
        try:
            # Listed first, as an append is (GT: a refused import leaves a newer score alone).
            await uncancelled(store._redis.zadd(store._index_key, {thread_id: lines.last_ts or 0}, gt=True))
            if store._runs.cluster and lines.open_run:  # the shard listed before it holds the thread
                await uncancelled(store._redis.sadd(store._runs.registry, store._runs.set_for(thread_id)))
            outcome = _text(await uncancelled(store._commit_import_script(keys=keys, args=args, client=store._redis)))
            if outcome == "imported":
                await uncancelled(store._redis.zadd(store._index_key, {thread_id: lines.last_ts or 0}))
        except (aioredis.RedisError, OSError) as exc:
            await self.abort()
            raise store._failed(f"importing {thread_id!r}", exc) from exc
        if outcome == "exists":
            raise ThreadExists(f"thread {thread_id!r} exists (import it with replace to overwrite it)")
        watch = store._watches.get(thread_id)
        if watch is not None:
            watch.forget_epoch()

    async def abort(self) -> None:
        self._done = True
        with contextlib.suppress(aioredis.RedisError, OSError):  # else it expires on its own
            await uncancelled(self._store._redis.delete(self._staging))


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
