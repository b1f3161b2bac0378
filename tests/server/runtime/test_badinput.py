"""The bad-input log: every case counted, a bounded number of lines per window."""

from __future__ import annotations

import logging

import pytest

from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.bad_input import BadInputLog


def test_lines_are_rate_limited_and_every_case_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    metrics = GatewayMetrics()
    bad = BadInputLog(metrics, lines_per_window=3, window_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="agui_gateway.bad_input"):
        for i in range(100):
            bad.report("upstream_malformed", "bad line %d", i)
        assert [r.getMessage() for r in caplog.records] == ["bad line 0", "bad line 1", "bad line 2"]
        now[0] = 10.0  # the next window: first a summary of what was left out
        bad.report("upstream_malformed", "bad line %d", 100)
    assert [r.getMessage() for r in caplog.records][3:] == [
        "(97 more lines about bad input were not logged)",
        "bad line 100",
    ]
    assert metrics.registry.get_sample_value("agui_gateway_bad_input_total", {"kind": "upstream_malformed"}) == 101
