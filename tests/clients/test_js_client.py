"""The JavaScript client (``clients/js``): build it and run its Node test suite.

The suite starts the real gateway with this interpreter (``AGUI_PYTHON``), puts a
connection-cutting TCP proxy in front of it and checks that ``GatewayAgent`` ends every
cut run and every restored thread exactly as the official client's uncut run does.
Node.js (>= 18) and npm are required: without them this test fails, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGUI_PYTHON": sys.executable}
    return subprocess.run(
        command,
        cwd=CLIENT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} exited with {result.returncode}:\n{result.stdout}"


def _needs_install() -> bool:
    installed = CLIENT / "node_modules" / ".package-lock.json"
    lock = CLIENT / "package-lock.json"
    return not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime


def test_js_client_builds_and_passes_its_node_suite() -> None:
    node = shutil.which("node")
    npm = shutil.which("npm")
    assert node is not None, "Node.js (>= 18) must be on PATH to build and test clients/js"
    assert npm is not None, "npm must be on PATH to build and test clients/js"
    if _needs_install():
        _check(_run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=600), "npm ci")
    _check(_run([npm, "run", "build"], timeout=300), "npm run build")
    suites = sorted(str(path.relative_to(CLIENT)) for path in (CLIENT / "test").glob("*.test.mjs"))
    assert suites, "clients/js/test has no *.test.mjs files"
    result = _run([node, "--test", *suites], timeout=280)
    _check(result, "node --test")
    assert "# fail 0" in result.stdout, result.stdout
