"""A long-lived Node process around the official client, spoken to one JSON line at a time.

Tests that compare a Python port with the client's own code (chunk transform,
schema enforcement) start one driver per module: Node's start-up is paid once,
then each request is one line in, one line out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "harness"


class NodeDriver:
    """``node -e script`` in the harness directory: a JSON request per line, a JSON reply per line."""

    def __init__(self, script: str, name: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            ["node", "--input-type=module", "-e", script],
            cwd=HARNESS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, SUPPRESS_TRANSFORMATION_WARNINGS="true"),
        )

    def ask(self, request: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the node {self.name} driver exited"
        return json.loads(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


Driver = TypeVar("Driver", bound=NodeDriver)


def start_node_driver(driver_type: type[Driver], script: str) -> Iterator[Driver]:
    """Body of a module-scoped fixture: fail clearly without Node and the harness, else yield a driver.

    The real client is what these tests check against; without it they would prove nothing,
    so a missing harness is an error (scripts/test.sh installs it), never a skip.
    """
    if shutil.which("node") is None or not (HARNESS / "node_modules" / "@ag-ui" / "client").is_dir():
        pytest.fail("node and harness/node_modules are needed: run `npm ci --prefix harness`", pytrace=False)
    driver = driver_type(script)
    yield driver
    driver.close()
