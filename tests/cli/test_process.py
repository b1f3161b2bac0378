"""The process settings ``agui-gateway serve`` makes (cli/process.py), checked in a process
of their own: the test process's collector stays as it was."""

from __future__ import annotations

import json
import subprocess
import sys

from agui_gateway.cli import process

PROBE = """
import gc, json
before = gc.get_threshold()
from agui_gateway.cli.process import tune_garbage_collector
tune_garbage_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_serve_freezes_the_start_up_heap_and_makes_collections_rarer() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    # Everything imported before serving is out of the collector's sight.
    assert got["frozen"] > 10_000
    assert got["after"] == [process.YOUNG_THRESHOLD, process.MIDDLE_THRESHOLD, process.OLD_THRESHOLD]
    assert all(after > before for after, before in zip(got["after"], got["before"], strict=True))
