"""When this process last found Redis failing: the grace that lets a lease outlive an outage.

A lease lapses by Redis's own key expiry, so an outage longer than the lease's ttl
(a failover, a restart: seconds to tens of seconds) leaves every live run without
its lease when Redis answers again. Its holder is alive and may take it back
(``RunLeases.reclaim``: the same token, granted again only if no lease was granted
on the thread since). What must not happen is another replica's recovery winning
that race and cutting the run off as if its replica had died. So for one ttl after
this process last saw Redis fail, its leases grant no recovery, its sweep finds no
expired lease, and a run start meeting a lease that lapsed does not take the thread
(:class:`~.lease.RedisLeases`): the holders, renewing every fraction of a second,
take theirs back first; a replica that really died is recovered one ttl later.
"""

from __future__ import annotations

import time


class OutageClock:
    def __init__(self) -> None:
        self._last_failure: float | None = None

    def failed(self) -> None:
        """A command failed for want of Redis (not a refusal such as a fenced append)."""
        self._last_failure = time.monotonic()

    def within(self, seconds: float) -> bool:
        """Whether Redis failed less than ``seconds`` ago."""
        return self._last_failure is not None and time.monotonic() - self._last_failure < seconds
