"""The gateway's ASGI app: ``create_app(config, store=None, agents=None) -> Starlette``.

Wiring only: the :class:`~agui_gateway.server.gateway.Gateway` state opened and
closed with the app's lifespan, the API's routes (:mod:`.routes`), the demo
agent when configured, CORS, the browser guard (:mod:`.http.guards`), and the one place errors become
responses (:func:`~agui_gateway.server.http.responses.exception_handlers`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from agui_gateway.server.config import GatewayConfig
from agui_gateway.server.gateway import DEMO_PATH, Gateway
from agui_gateway.server.http.guards import BrowserGuard
from agui_gateway.server.http.responses import exception_handlers
from agui_gateway.server.http.routes import api_routes
from agui_gateway.server.ui import ui_routes
from agui_gateway.store.base import ThreadStore
from agui_gateway.upstream.asgi import ASGIApp

# What a browser page on another origin needs to call the API: the methods of the
# routes, and the request headers they read (bearer tokens, JSON bodies, resume
# positions). No response header is exposed beyond the CORS-safelisted ones.
CORS_METHODS = ("GET", "POST")
CORS_HEADERS = ("Authorization", "Content-Type", "Last-Event-ID")


def create_app(
    config: GatewayConfig,
    store: ThreadStore | None = None,
    agents: Mapping[str, ASGIApp | tuple[ASGIApp, str]] | None = None,
) -> Starlette:
    """The gateway app. ``agents`` mounts ASGI AG-UI apps in process, by agent name: an app
    (runs are posted to its ``/``) or ``(app, path)``; they join the configured agents."""
    gateway = Gateway.create(config, store, agents)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.open()
        try:
            yield
        finally:
            await gateway.close()

    routes = api_routes(gateway) + ui_routes(gateway)
    if config.demo:
        from agui_gateway.upstream.demo import create_demo_app

        routes.append(Mount(DEMO_PATH, app=create_demo_app(config.demo_pace)))
    app = Starlette(
        routes=routes,
        middleware=[*_cors(config), _browser_guard(config)],
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    app.state.gateway = gateway
    return app


def _browser_guard(config: GatewayConfig) -> Middleware:
    """Host/Origin/content-type checks (see :mod:`.http.guards`), inside CORS: loopback-only
    rules without tokens (and without ``--insecure``)."""
    open_access = not config.tokens and not config.insecure
    return Middleware(BrowserGuard, open_access=open_access, cors_origins=config.cors_origins)


def _cors(config: GatewayConfig) -> list[Middleware]:
    """Starlette's CORS middleware for the configured origins; none when there are none.

    It sits outside the routes and their error handlers, so a 401 or 404 carries the
    CORS headers too and the page can read the JSON error; preflight requests are
    answered by the middleware itself, before authentication (a browser sends them
    without the Authorization header).
    """
    if not config.cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=list(CORS_METHODS),
            allow_headers=list(CORS_HEADERS),
        )
    ]
