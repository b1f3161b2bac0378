"""The process over HTTP: ``GET /healthz``, ``GET /readyz`` and ``GET /metrics``.

``/healthz`` says the process answers (and whether its store does); ``/readyz`` whether
it should be sent work: start-up recovery is done (``runtime/readiness.py``), the store
answers and the process is not draining. A Kubernetes readiness probe goes to
``/readyz``; see the README's "Kubernetes" section for the probe settings.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from agui_gateway.server.http.responses import json_response
from agui_gateway.server.http.services import ApiServices
from agui_gateway.store.base import StoreError

HEALTH_TIMEOUT_S = 2.0  # a store that does not answer a ping within it is reported down


class SystemHandlers:
    def __init__(self, services: ApiServices) -> None:
        self.services = services

    async def healthz(self, request: Request) -> Response:
        services = self.services
        runs = len(services.threads.active_runs())
        try:
            await asyncio.wait_for(services.store.ping(), HEALTH_TIMEOUT_S)
        except (StoreError, TimeoutError) as exc:
            body = {"status": "degraded", "store": "down", "error": str(exc) or "timeout", "runs": runs}
            return json_response(body, status=503)
        return json_response({"status": "ok", "store": "up", "runs": runs})

    async def readyz(self, request: Request) -> Response:
        services = self.services
        reason = services.readiness.not_ready_reason
        if reason is None:
            try:
                await asyncio.wait_for(services.store.ping(), HEALTH_TIMEOUT_S)
            except (StoreError, TimeoutError) as exc:
                reason = f"store down: {str(exc) or 'timeout'}"
        if reason is not None:
            return json_response({"status": "not ready", "reason": reason}, status=503)
        return json_response({"status": "ready"})

    async def metrics(self, request: Request) -> Response:
        self.services.auth.require_any(request)
        metrics = self.services.metrics
        return Response(metrics.render(), media_type=metrics.content_type)
