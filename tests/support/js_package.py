"""The JavaScript client package (``clients/js``) from pytest: install, build, run Node tests.

Node.js (>= 18) and npm are required: without them a test using this fails, it does not skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "js"


def run_in_client(
    command: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``command`` in ``clients/js`` with this interpreter as the gateway's Python (``AGUI_PYTHON``)."""
    return subprocess.run(
        list(command),
        cwd=CLIENT,
        env={**os.environ, "AGUI_PYTHON": sys.executable, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def check(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} exited with {result.returncode}:\n{result.stdout}"


def _needs_install() -> bool:
    installed = CLIENT / "node_modules" / ".package-lock.json"
    lock = CLIENT / "package-lock.json"
    return not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime


def node() -> str:
    path = shutil.which("node")
    assert path is not None, "Node.js (>= 18) must be on PATH to build and test clients/js"
    return path


def build_client() -> None:
    """``npm ci`` when the lock file is newer than the install, then ``npm run build``."""
    npm = shutil.which("npm")
    node()
    assert npm is not None, "npm must be on PATH to build and test clients/js"
    if _needs_install():
        check(run_in_client([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=600), "npm ci")
    check(run_in_client([npm, "run", "build"], timeout=300), "npm run build")


def run_node_tests(suites: Sequence[Path], timeout: float, env: Mapping[str, str] | None = None) -> str:
    """``node --test`` over ``suites`` (in ``clients/js``); fails unless every test passed."""
    assert suites, "no Node test files given"
    relative = [str(path.relative_to(CLIENT)) for path in suites]
    result = run_in_client([node(), "--test", *relative], timeout=timeout, env=env)
    check(result, "node --test")
    assert "# fail 0" in result.stdout, result.stdout
    return result.stdout
