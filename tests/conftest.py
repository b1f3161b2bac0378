"""Shared pytest options and fixtures; the helpers themselves live in ``tests/support/``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.agents import ScriptedAgent, serve_agent
from support.official_client import OfficialClient

# The Redis servers (single and cluster) and the store parameter of the gateway tests.
pytest_plugins = ["support.redis_fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def official_client() -> Iterator[OfficialClient]:
    """One long-lived replay server around the official @ag-ui/client for the session."""
    with OfficialClient() as client:
        yield client


@pytest.fixture(scope="session")
def official_client_0059() -> Iterator[OfficialClient]:
    """The same replay server around @ag-ui/client 0.0.59 (what @copilotkit/runtime 1.75.0 bundles)."""
    with OfficialClient(client="0.0.59") as client:
        yield client


@pytest.fixture(scope="session")
def native_clone_client() -> Iterator[OfficialClient]:
    """The same replay server keeping the platform's own ``structuredClone`` (the one the
    client calls), to check the harness's faster clone against it."""
    with OfficialClient(env={"AGUI_HARNESS_NATIVE_CLONE": "1"}) as client:
        yield client


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[ScriptedAgent, str]]:
    """One scripted agent per test module: (the agent, its run URL)."""
    with serve_agent() as served:
        yield served
