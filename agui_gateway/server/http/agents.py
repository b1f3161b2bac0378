"""The agents over HTTP: ``GET /agents/{agent}/capabilities``, and finding a request's agent.

What an agent behind the gateway can do, as AG-UI ``AgentCapabilities``: AG-UI lets an
agent declare capabilities (``@ag-ui/client``'s optional ``getCapabilities()``; the
``AgentCapabilities`` type of ``ag-ui-protocol``). An agent behind the gateway keeps
what it declares (from the config file, see
:class:`~agui_gateway.server.config.AgentOptions`) and gains what the gateway adds:
its runs stream over SSE and are **resumable** by sequence number
(``transport.resumable``, a capability AG-UI reserves without defining a mechanism;
``docs/resuming.md`` states ours). The gateway's own details go under ``custom``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.server.config import AgentOptions
from agui_gateway.server.errors import NotFound
from agui_gateway.server.http.responses import json_response
from agui_gateway.server.http.services import ApiServices
from agui_gateway.upstream.agents import AgentEndpoint

# The key under ``custom`` that describes the gateway's additions.
GATEWAY_KEY = "aguiGateway"


def agent_of(services: ApiServices, request: Request) -> AgentEndpoint:
    """The agent named in the request's path, or :class:`NotFound`."""
    name = request.path_params["agent"]
    endpoint = services.agents.get(name)
    if endpoint is None:
        raise NotFound(f"unknown agent {name!r}")
    return endpoint


class AgentHandlers:
    def __init__(self, services: ApiServices) -> None:
        self.services = services

    async def capabilities(self, request: Request) -> Response:
        self.services.auth.require_any(request)
        agent = agent_of(self.services, request)
        return json_response(gateway_capabilities(agent, self.services.config.options_of(agent.name)))


def _merged(declared: Mapping[str, Any], added: Mapping[str, Any]) -> dict[str, Any]:
    """``declared`` with ``added`` laid over it, table by table (``added`` wins on a leaf)."""
    out = dict(declared)
    for key, value in added.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            out[key] = _merged(current, value)
        else:
            out[key] = value
    return out


def gateway_capabilities(agent: AgentEndpoint, options: AgentOptions) -> dict[str, Any]:
    """The agent's declared capabilities with the gateway's laid over them, validated and
    serialised by the official ``AgentCapabilities`` model (camelCase, no nulls)."""
    from ag_ui.core import AgentCapabilities  # pydantic models: loaded on first use

    added: dict[str, Any] = {
        "transport": {"streaming": True, "resumable": True},
        "custom": {
            GATEWAY_KEY: {
                "resume": {
                    "idField": (
                        "SSE id EPOCH:SEQ: the thread's epoch (changed when it is deleted and created again) "
                        "and the sequence number covered by everything up to that frame"
                    ),
                    "recreated": "409 thread_recreated: an id of another epoch; reconnect without one",
                    "header": "Last-Event-ID",
                    "query": "after",
                    "events": "/threads/{threadId}/events",
                    "connect": f"/agents/{agent.name}/connect",
                    "freshReplay": "no Last-Event-ID: compacted history starting with RUN_STARTED, then live",
                },
                "history": options.history,
                "inProcess": agent.in_process,
            }
        },
    }
    merged = _merged(options.capabilities, added)
    model = AgentCapabilities.model_validate(merged)
    result: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    return result
