"""How long a stream waits through a store outage before it gives up on the store.

A store that cannot be reached for a moment (a Redis restart or failover) is no reason
to cut a client's stream: a run rides the outage out (``runtime/outage_buffer.py``) and
its events reach the log once the store answers. So a stream that meets
``StoreUnavailable`` sends heartbeats and tries again, with backoff, as long as its
:class:`StorePatience` allows:

* a watcher (``/events``, a connect): for the outage budget from the first failure it
  met (``GatewayConfig.store_outage_budget_s``), then it ends with an ``error`` frame and
  resumes by ``Last-Event-ID``;
* a run's caller: as long as its run is in progress in this process (the run itself ends
  an outage longer than the budget with its RUN_ERROR), then for the budget if the run's
  end is in the log, and not at all if the run could not store it (the process stops with
  the store still away): the caller then gets the RUN_ERROR in place of its stored end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

RETRY_FIRST_S = 0.05  # a stream's first retry after the store failed under it
RETRY_MAX_S = 1.0  # and its longest pause between two (a heartbeat goes out each time)


class StorePatience:
    def __init__(
        self,
        budget_s: float,
        *,
        holding: Callable[[], bool] | None = None,
        budget: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._budget_s = budget_s
        self._holding = holding  # True: wait whatever the time (the caller's run still goes on)
        self._budget = budget  # False: no budget left to wait once not holding
        self._clock = clock
        self._since: float | None = None  # the first failure of the current outage
        self._delay = RETRY_FIRST_S

    def answered(self) -> None:
        """The store answered: the next failure starts a new outage."""
        self._since = None
        self._delay = RETRY_FIRST_S

    def waits(self) -> bool:
        """The store failed under the stream: whether it waits and tries again."""
        now = self._clock()
        if self._since is None:
            self._since = now
        if self._holding is not None and self._holding():
            return True
        if self._budget is not None and not self._budget():
            return False
        return now - self._since < self._budget_s

    async def pause(self) -> None:
        """The pause before the next try (backoff up to :data:`RETRY_MAX_S`)."""
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX_S)
