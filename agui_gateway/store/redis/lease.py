"""Run leases in Redis (see :mod:`agui_gateway.store.lease`).

Keys, next to the thread's log under the same hash tag (one Cluster slot)::

    P:{T}:lease   Hash: token, run, kind, replica, [stop]; expires ttl after the last renewal (PEXPIRE)
    P:{T}:fence   Counter: the last fencing token granted on the thread (reset only by a delete)
    P:leases      Sorted set: thread ids by lease expiry (ms), for the sweep
    P:fences      Counter: the store-wide floor of new fencing tokens (INCR per grant)

A thread's delete removes its lease and its fence counter with its data, in one step
(``store.py``). So that a token granted before a delete can never hold a lease granted
after it (the thread created again), a token is the larger of the thread's counter and
the store-wide one, which no delete resets: tokens of a thread only grow, across its
incarnations too. (A thread whose counter ran ahead of the store-wide one, stored before
that counter existed, raises it to its own at its next grant.)

With retention (``retention_ms``), a grant and every renewal also push the expiry of the
thread's data keys to ``retention`` from now: a thread with a live lease never expires,
and one whose holder died expires ``retention`` after the last renewal, gateway or not.

The lease's expiry is Redis's own key expiry, so the replicas' clocks do not
matter for who holds a lease; the sorted set only tells the sweep where to look
(it is updated by separate commands, as it lives in another slot, and a stale
entry costs one failed acquire). The append script checks the token (see
``store.py``), and marks the lease ``ended`` when it stores the holder's terminal
event.

A lease that lapsed while Redis was away from its live holder is taken back with
:meth:`RedisLeases.reclaim` (the same token, only if none was granted since); for
one ttl after this process saw Redis fail, it grants no recovery and lists no lapsed
lease, so that the holder wins (:mod:`.outage`).

A lease's kind: ``run`` (driving a run), ``recovery`` (closing a dead replica's run)
or ``ended`` (a run whose end is stored); the last two are closing (see
:attr:`~agui_gateway.store.lease.Holder.closing`). A lease without a kind is a run's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from agui_gateway.store.base import StoreError, StoreUnavailable
from agui_gateway.store.lease import Holder, Lease, Renewal, RunLeases
from agui_gateway.store.redis.connect import uncancelled
from agui_gateway.store.redis.outage import OutageClock

# KEYS: lease, fence, then the thread's data keys (their expiry is refreshed).
# ARGV: run id, ttl (ms), kind, replica id, the replica id whose live lease this one may
# replace ('' for none: only a thread without a live lease is granted one), the store-wide
# token floor, the retention (ms, '' for none).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- This very grant, asked again (redis-py repeats a command whose reply a dropped
  -- connection lost): a run's lease of this run id and replica is the one granted.
  local lease = redis.call('HMGET', KEYS[1], 'token', 'run', 'kind', 'replica')
  if ARGV[3] == 'run' and lease[2] == ARGV[1] and lease[3] == 'run' and lease[4] == ARGV[4] then
    return tonumber(lease[1])
  end
  if ARGV[5] == '' or redis.call('HGET', KEYS[1], 'replica') ~= ARGV[5] then return 0 end
  redis.call('DEL', KEYS[1])
end
local token = math.max(redis.call('INCR', KEYS[2]), tonumber(ARGV[6]))
token = string.format('%d', token)
redis.call('SET', KEYS[2], token)
redis.call('HSET', KEYS[1], 'token', token, 'run', ARGV[1], 'kind', ARGV[3], 'replica', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[7] ~= '' then
  for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
end
return token
"""

# KEYS: lease, then the thread's data keys. ARGV: token, ttl (ms), retention (ms, '' for none).
_RENEW = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return {0, ''} end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then
  for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
end
return {1, redis.call('HGET', KEYS[1], 'stop') or ''}
"""

# KEYS: lease, fence, then the thread's data keys (their expiry is refreshed, as by a renewal).
# ARGV: token, ttl (ms), run id, kind, replica id, retention (ms, '' for none). The holder's own
# lease renewed, or granted again under the same token when it lapsed and none was granted
# since. A delete removes the fence with the thread (and retention expires it with the data):
# a lease of a deleted thread is never granted again, not even into its next incarnation.
_RECLAIM = """
local holder = redis.call('HGET', KEYS[1], 'token')
if holder ~= ARGV[1] then
  if holder or redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
  redis.call('HSET', KEYS[1], 'token', ARGV[1], 'run', ARGV[3], 'kind', ARGV[4], 'replica', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[6] ~= '' then
  for i = 3, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
end
return 1
"""

# Raises the store-wide token floor to a thread's token that ran ahead of it.
_RAISE_FLOOR = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

KIND_RUN, KIND_RECOVERY, KIND_ENDED = "run", "recovery", "ended"
_CLOSING_KINDS = frozenset({KIND_RECOVERY.encode(), KIND_ENDED.encode()})

_REQUEST_STOP = """
local run = redis.call('HGET', KEYS[1], 'run')
if not run then return false end
if ARGV[2] ~= '' and run ~= ARGV[2] then return run end
if not redis.call('HGET', KEYS[1], 'stop') then redis.call('HSET', KEYS[1], 'stop', ARGV[1]) end
return run
"""


class RedisLeases(RunLeases):
    def __init__(
        self,
        client: Any,
        key: Callable[[str, str], str],
        index_key: str,
        ttl_s: float,
        replica_id: str,
        outages: OutageClock | None = None,
        *,
        floor_key: str,
        data_kinds: tuple[str, ...] = (),
        retention_ms: int | None = None,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("the lease ttl must be positive")
        self.ttl_s = ttl_s
        self.replica_id = replica_id
        self.outages = outages if outages is not None else OutageClock()
        self._client = client
        self._key = key
        self._index = index_key
        self._floor = floor_key
        self._data_kinds = data_kinds  # the thread's keys whose expiry a grant or renewal refreshes
        self._retention = "" if retention_ms is None else str(retention_ms)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._raise_floor = client.register_script(_RAISE_FLOOR)
        self._release = client.register_script(_RELEASE)
        self._reclaim = client.register_script(_RECLAIM)
        self._request_stop = client.register_script(_REQUEST_STOP)

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_s * 1000))

    async def _track(self, thread_id: str) -> None:
        await uncancelled(self._client.zadd(self._index, {thread_id: time.time() * 1000 + self._ttl_ms}))

    def _in_grace(self) -> bool:
        """Within one ttl of an outage seen here: lapsed leases are their holders' to reclaim."""
        return self.outages.within(self.ttl_s)

    async def acquire(self, thread_id: str, run_id: str, *, recovery: bool = False) -> Lease | None:
        if self._in_grace():
            if recovery:
                return None
            try:  # a lease still listed was never released: it may have lapsed, for its holder to reclaim
                listed = await uncancelled(self._client.zscore(self._index, thread_id))
            except (aioredis.RedisError, OSError) as exc:
                raise self._failure(f"acquiring the run lease of {thread_id!r} failed: {exc}") from exc
            if listed is not None:
                return None
        return await self._grant(thread_id, run_id, recovery, replacing="")

    async def reclaim(self, lease: Lease) -> bool:
        try:
            kind = KIND_RECOVERY if lease.recovery else KIND_RUN
            held = await uncancelled(
                self._reclaim(
                    keys=[
                        self._key(lease.thread_id, "lease"),
                        self._key(lease.thread_id, "fence"),
                        *self._data_keys(lease.thread_id),
                    ],
                    args=[lease.token, self._ttl_ms, lease.run_id, kind, self.replica_id, self._retention],
                )
            )
            if held:
                await self._track(lease.thread_id)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"reclaiming the run lease of {lease.thread_id!r} failed: {exc}") from exc
        return bool(held)

    def _failure(self, message: str) -> StoreError:
        self.outages.failed()
        return StoreUnavailable(message)

    async def take_over(self, thread_id: str, run_id: str) -> Lease | None:
        return await self._grant(thread_id, run_id, True, replacing=self.replica_id)

    async def _grant(self, thread_id: str, run_id: str, recovery: bool, replacing: str) -> Lease | None:
        kind = KIND_RECOVERY if recovery else KIND_RUN
        try:
            floor = int(await uncancelled(self._client.incr(self._floor)))
            token = int(
                await uncancelled(
                    self._acquire(
                        keys=[
                            self._key(thread_id, "lease"),
                            self._key(thread_id, "fence"),
                            *self._data_keys(thread_id),
                        ],
                        args=[run_id, self._ttl_ms, kind, self.replica_id, replacing, floor, self._retention],
                    )
                )
            )
            if token > floor:
                await uncancelled(self._raise_floor(keys=[self._floor], args=[token]))
            if token:
                await self._track(thread_id)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"acquiring the run lease of {thread_id!r} failed: {exc}") from exc
        return Lease(thread_id, run_id, token, recovery) if token else None

    def _data_keys(self, thread_id: str) -> list[str]:
        return [self._key(thread_id, kind) for kind in self._data_kinds] if self._retention else []

    async def held_by_this_replica(self) -> list[str]:
        # Every live lease is in the sweep's index (taken or renewed since its entry was written).
        try:
            threads = [t.decode() for t in await uncancelled(self._client.zrange(self._index, 0, -1))]
            held = []
            for thread_id in threads:
                replica = await uncancelled(self._client.hget(self._key(thread_id, "lease"), "replica"))
                if replica is not None and replica.decode() == self.replica_id:
                    held.append(thread_id)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"listing the run leases of replica {self.replica_id!r} failed: {exc}") from exc
        return held

    async def renew(self, lease: Lease) -> Renewal:
        try:
            held, stop = await uncancelled(
                self._renew(
                    keys=[self._key(lease.thread_id, "lease"), *self._data_keys(lease.thread_id)],
                    args=[lease.token, self._ttl_ms, self._retention],
                )
            )
            if held:
                await self._track(lease.thread_id)
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"renewing the run lease of {lease.thread_id!r} failed: {exc}") from exc
        return Renewal(bool(held), stop.decode() if stop else None)

    async def release(self, lease: Lease) -> None:
        try:
            if await uncancelled(self._release(keys=[self._key(lease.thread_id, "lease")], args=[lease.token])):
                await uncancelled(self._client.zrem(self._index, lease.thread_id))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"releasing the run lease of {lease.thread_id!r} failed: {exc}") from exc

    async def holder(self, thread_id: str) -> Holder | None:
        try:
            run, kind = await uncancelled(self._client.hmget(self._key(thread_id, "lease"), ["run", "kind"]))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"reading the run lease of {thread_id!r} failed: {exc}") from exc
        return Holder(run.decode(), kind in _CLOSING_KINDS) if run is not None else None

    async def request_stop(self, thread_id: str, message: str, run_id: str | None = None) -> str | None:
        # ARGV[2] '' asks whichever run holds the lease (a run id is never empty: RunAgentInput).
        args = [message, run_id or ""]
        try:
            run = await uncancelled(self._request_stop(keys=[self._key(thread_id, "lease")], args=args))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"requesting a stop on {thread_id!r} failed: {exc}") from exc
        return run.decode() if run else None

    async def expired(self) -> list[str]:
        if self._in_grace():
            return []
        try:
            found = await uncancelled(self._client.zrangebyscore(self._index, "-inf", time.time() * 1000))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"listing expired run leases failed: {exc}") from exc
        return [t.decode() for t in found]

    async def forget(self, thread_id: str) -> None:
        try:
            await uncancelled(self._client.zrem(self._index, thread_id))
        except (aioredis.RedisError, OSError) as exc:
            raise self._failure(f"updating the run lease index failed: {exc}") from exc
