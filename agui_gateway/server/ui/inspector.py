"""The maintained AG-UI inspector (PyPI ``agui-inspector``, the ``inspector`` extra) at ``/ui/inspector``.

A chat playground against the gateway's own agents, rather than one rebuilt here:
each agent is offered at ``/agents/{name}/run`` on the page's own origin, so its
runs go through the gateway (stored, fanned out, visible in ``/ui``). The mount adds
no authentication: the page itself carries no data, and every run it starts meets the
gateway's own token checks (the inspector has a token setting of its own). Off unless
``--inspector`` is given; the package is the ``inspector`` extra.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.routing import BaseRoute, Router

from agui_gateway.server.errors import InspectorUnavailable

INSPECTOR_PATH = "/ui/inspector"


def inspector_routes(agent_names: Iterable[str]) -> list[BaseRoute]:
    try:
        from agui_inspector import Agent, mount_inspector
    except ImportError as exc:
        raise InspectorUnavailable(
            "--inspector needs the agui-inspector package: pip install 'agui-gateway[inspector]'"
        ) from exc
    router = Router()
    agents = [Agent(id=name, url=f"/agents/{name}/run", name=name) for name in sorted(agent_names)]
    mount_inspector(router, agents=agents, enabled=True, path=INSPECTOR_PATH)
    return list(router.routes)
