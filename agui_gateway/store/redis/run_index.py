"""The Redis store's open-run index (see :mod:`agui_gateway.store.open_runs`).

On a single server it is one set, ``P:open-runs``, of the threads whose log ends in an
open run. The append script adds or removes the thread in the same script that
stores the batch (``store.py``), so the set is exact: no crash or failover can put
the two apart.

A Redis Cluster runs a script on one slot only, and every key of a thread lives in
the slot of its hash tag ``{T}``. So the set is sharded by slot: the thread's entry
goes in ``P:open-runs:{S}``, where the tag ``S`` is a short string whose slot is the
thread's (:func:`slot_tag`), and the script updates it as on a single server. The
shards in use are listed in ``P:open-run-slots``, which an append that may open a run
updates *before* its script (another slot), so no shard with an entry is ever
unlisted; it holds at most 16,384 tags and is never pruned (a pruner could race an
append into an emptied shard). Listing costs one read of the registry and one of
each shard in use: O(open runs + slots in use), whatever the number of threads.

``P:open-runs-built`` marks a store whose index covers every thread: set when a store
is first opened empty, or by a full repair (``agui-gateway recover --full``) of a store
whose threads an older version wrote.
"""

from __future__ import annotations

from functools import cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

# KEYS: log, set. ARGV: the log's last seq as the repair read it, 'open' or 'closed',
# the thread id. Sets the entry only if the log did not move since: {applied, changed}.
REPAIR_LUA = """
local seq = 0
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 then seq = tonumber(string.match(top[1][1], '^0%-(%d+)$')) end
if seq ~= tonumber(ARGV[1]) then return {0, 0} end
if ARGV[2] == 'open' then return {1, redis.call('SADD', KEYS[2], ARGV[3])} end
return {1, redis.call('SREM', KEYS[2], ARGV[3])}
"""


@cache
def _slot_tags() -> tuple[str, ...]:
    """For every cluster slot, the shortest decimal string in it (found once, ~0.2 s)."""
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing = REDIS_CLUSTER_HASH_SLOTS
    n = 0
    while missing:
        slot = key_slot(str(n).encode())
        if tags[slot] is None:
            tags[slot] = str(n)
            missing -= 1
        n += 1
    return tuple(tag for tag in tags if tag is not None)


def slot_tag(thread_id: str) -> str:
    """A hash tag in the slot of the thread's own tag ``{thread_id}``."""
    return _slot_tags()[key_slot(thread_id.encode())]


class OpenRunKeys:
    """Where the index of a store (``prefix``) lives; ``cluster``: sharded by slot."""

    def __init__(self, prefix: str, cluster: bool) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.registry = f"{prefix}:open-run-slots"
        self.built = f"{prefix}:open-runs-built"  # set once the index covers every thread

    def set_for(self, thread_id: str) -> str:
        """The set holding the thread's entry (in the thread's slot on a Cluster)."""
        if not self.cluster:
            return f"{self.prefix}:open-runs"
        return self.shard(slot_tag(thread_id))

    def shard(self, tag: str) -> str:
        return f"{self.prefix}:open-runs:{{{tag}}}"
