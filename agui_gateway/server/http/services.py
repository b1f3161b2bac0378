"""What the HTTP handlers are given: the gateway's parts, declared here, built by the wiring.

The handlers do not import the :class:`~agui_gateway.server.gateway.Gateway` that
holds these (it sits above the HTTP room and builds it); they name the parts they
use in :class:`ApiServices`, which the gateway satisfies.
"""

from __future__ import annotations

from typing import Protocol

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.fanout.changes import ThreadChanges
from agui_gateway.server.http.auth import Authorizer
from agui_gateway.server.http.stream_slots import StreamSlots
from agui_gateway.server.metrics import GatewayMetrics
from agui_gateway.server.runtime.deletion import ThreadDeleter
from agui_gateway.server.runtime.manager import RunManager
from agui_gateway.server.runtime.readiness import Readiness
from agui_gateway.server.runtime.registry import ThreadRegistry
from agui_gateway.store.base import ThreadStore
from agui_gateway.upstream.agents import AgentDirectory


class ApiServices(Protocol):
    @property
    def config(self) -> GatewayConfig: ...
    @property
    def store(self) -> ThreadStore: ...
    @property
    def agents(self) -> AgentDirectory: ...
    @property
    def metrics(self) -> GatewayMetrics: ...
    @property
    def threads(self) -> ThreadRegistry: ...
    @property
    def runs(self) -> RunManager: ...
    @property
    def auth(self) -> Authorizer: ...
    @property
    def streams(self) -> StreamSlots: ...
    @property
    def changes(self) -> ThreadChanges: ...
    @property
    def readiness(self) -> Readiness: ...
    @property
    def deletions(self) -> ThreadDeleter: ...
