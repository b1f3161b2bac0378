"""When this process last found Redis failing: the grace that lets a lease outlive an outage.

A lease lapses by Redis's own key expiry, so an outage longer than the lease's ttl
(a failover, a restart: seconds to tens of seconds) leaves every live run without
its lease when Redis answers again. Its holder is alive and may take it back
(``RunLeases.reclaim``: the same token, granted again only if no lease was granted
on the thread since). What must not happen is another replica's recovery winning
that race and cutting the run off as if its replica had died. So for one ttl after
Redis answers again (as far as this process can tell: from its first look after the
last failure), its leases grant no recovery, its sweep finds no
expired lease, and a run start meeting a lease that lapsed does not take the thread
(:class:`~.lease.RedisLeases`): the holders, renewing every fraction of a second,
take theirs back first; a replica that really died is recovered one ttl later.
"""

from __future__ import annotations

import time


class OutageClock:
    """The grace runs from the first look after the last failure (when Redis is back, as far
    as this process can tell), so a process that last failed early in a long outage still
    gives the holders their full ttl once Redis answers again."""

    def __init__(self) -> None:
        self._failed = False
        self._back_since: float | None = None  # the first look since the last failure

    def failed(self) -> None:
        """A command failed for want of Redis (not a refusal such as a fenced append)."""
        self._failed = True
        self._back_since = None

    def within(self, seconds: float) -> bool:
        """Whether this is less than ``seconds`` after the first look since Redis last failed
        (a look whose command fails starts the grace again at the next one)."""
        if not self._failed:
            return False
        now = time.monotonic()
        if self._back_since is None:
            self._back_since = now
        return now - self._back_since < seconds
