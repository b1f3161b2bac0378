"""``GatewayAgentRunner`` (``clients/js``, ``@agui-gateway/client/copilotkit``) with the real
``@copilotkit/runtime`` 1.75.0 of the package's lock file.

Two gateway replicas (two ``agui-gateway serve`` processes) share one Redis, as in
``tests/server/runtime/test_replicas.py``; the suite's scripted agent answers their runs, scripted
and released by the Node tests through a control endpoint on loopback
(``support.agent_control``). The Node tests in ``clients/js/test/copilotkit`` drive the
runner's contract directly and through CopilotKit runtime processes served over HTTP,
reached by an unmodified ``HttpAgent`` as CopilotKit's front end reaches them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.agent_control import agent_control_app
from support.agents import ScriptedAgent
from support.js_package import CLIENT, build_client, run_node_tests
from support.servers import GatewayProcess, serve_app
from support.stores import delete_keys

pytestmark = pytest.mark.redis

AGENT = "scripted"
# Short leases: a stop sent to the replica that does not hold the run is carried out
# by the holder at its next renewal.
LEASE_ARGS = ("--lease-ttl", "1.5", "--heartbeat", "0.5")


@pytest.fixture
def replicas(
    tmp_path: Path, agent: tuple[ScriptedAgent, str], redis_url: str
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    prefix = f"agui-copilotkit-{uuid.uuid4().hex}"
    args = ("--store", redis_url, "--redis-prefix", prefix, *LEASE_ARGS)
    a = GatewayProcess(tmp_path / "a", {AGENT: agent[1]}, *args)
    b = GatewayProcess(tmp_path / "b", {AGENT: agent[1]}, *args)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.terminate()
        b.terminate()
        delete_keys(redis_url, prefix)


def test_gateway_agent_runner_passes_its_copilotkit_suite(
    replicas: tuple[GatewayProcess, GatewayProcess], agent: tuple[ScriptedAgent, str]
) -> None:
    a, b = replicas
    build_client()
    suites = sorted((CLIENT / "test" / "copilotkit").glob("*.test.mjs"))
    with serve_app(agent_control_app(agent[0])) as control:
        run_node_tests(
            suites,
            timeout=280,
            env={
                "AGUI_GATEWAY_A": a.url,
                "AGUI_GATEWAY_B": b.url,
                "AGUI_GATEWAY_AGENT": AGENT,
                "AGUI_AGENT_CONTROL": control,
                # The runtime reports usage over the network unless told not to.
                "COPILOTKIT_TELEMETRY_DISABLED": "true",
                "DO_NOT_TRACK": "1",
            },
        )
