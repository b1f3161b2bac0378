"""Bad input from agents and clients: every case counted, log lines rate-limited.

An agent streaming binary garbage produces a malformed line per line it sends;
one warning each would flood the log (and the disk under it). Each case is
counted in ``agui_gateway_bad_input{kind}``; at most :data:`LINES_PER_WINDOW`
lines are logged per :data:`WINDOW_S` seconds, and the first line after a quiet
spell says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from agui_gateway.server.metrics import GatewayMetrics

LINES_PER_WINDOW = 10
WINDOW_S = 60.0

log = logging.getLogger("agui_gateway.bad_input")


class BadInputLog:
    """Counts bad input by kind and logs a bounded number of lines about it."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        lines_per_window: int = LINES_PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._limit = lines_per_window
        self._window_s = window_s
        self._clock = clock
        self._window_start = -window_s
        self._logged = 0
        self.suppressed = 0

    def report(self, kind: str, message: str, *args: object) -> None:
        self._metrics.bad_input.labels(kind).inc()
        now = self._clock()
        if now - self._window_start >= self._window_s:
            self._window_start, self._logged = now, 0
        if self._logged >= self._limit:
            self.suppressed += 1
            return
        self._logged += 1
        if self.suppressed:
            log.warning("(%d more lines about bad input were not logged)", self.suppressed)
            self.suppressed = 0
        log.warning(message, *args)
