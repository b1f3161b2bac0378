"""Shared pytest options and fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.official_client import OfficialClient

# The gateway tests' shared fixtures (the module-scoped scripted ``agent``).
pytest_plugins = ["support.gateway_fixtures"]


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
