"""The agents a gateway serves: each name resolves to an upstream endpoint.

An agent is either remote (an ``http(s)://`` URL, reached over the network) or
in process (an ASGI app, given as ``module:attribute[/path]`` on the command line
and in the config file, or as an app object through the library API). Both are
reached through an httpx client, so the upstream client, its fault handling and
the stored RUN_ERRORs are the same for both; an in-process app's client uses
:class:`~agui_gateway.upstream.asgi.StreamingASGITransport` and its lifespan
(:class:`~agui_gateway.upstream.asgi.AppLifespan`: start-up and shut-down) runs
with the gateway's.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from agui_gateway.upstream.asgi import AppLifespan, ASGIApp, StreamingASGITransport

# module.path:attribute[.attribute][/url/path]
_APP_SPEC = re.compile(r"(?P<module>[A-Za-z_][\w.]*):(?P<attribute>[A-Za-z_][\w.]*)(?P<path>/\S*)?")
# The host in an in-process agent's URLs: never resolved, only shown in logs and errors.
_IN_PROCESS_HOST = "in-process.agent"


class AgentLoadError(ValueError):
    """An in-process agent's ``module:attribute`` cannot be imported or is not an ASGI app."""


@dataclass(frozen=True, slots=True)
class AppSpec:
    """Where an in-process agent's ASGI app is: ``module:attribute`` and the path to post to."""

    module: str
    attribute: str
    path: str = "/"

    @classmethod
    def parse(cls, text: str) -> AppSpec | None:
        """The spec in ``text``, or None when ``text`` is not of the ``module:attribute[/path]`` form."""
        match = _APP_SPEC.fullmatch(text.strip())
        if match is None:
            return None
        return cls(match["module"], match["attribute"], match["path"] or "/")

    def load(self) -> ASGIApp:
        try:
            target: object = importlib.import_module(self.module)
        except ImportError as error:
            raise AgentLoadError(f"cannot import {self.module!r}: {error}") from error
        for name in self.attribute.split("."):
            try:
                target = getattr(target, name)
            except AttributeError as error:
                raise AgentLoadError(f"{self.module!r} has no attribute {self.attribute!r}") from error
        if not callable(target):
            raise AgentLoadError(f"{self.module}:{self.attribute} is not an ASGI app")
        return target  # callable(); the ASGI signature is checked at the first call


def is_agent_target(text: str) -> bool:
    """Whether ``text`` names an agent: an http(s) URL or an in-process app spec."""
    return text.startswith(("http://", "https://")) or AppSpec.parse(text) is not None


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """Where one run of an agent is posted, and the client that posts it."""

    name: str
    url: str
    client: httpx.AsyncClient
    in_process: bool


class AgentDirectory:
    """The gateway's agents by name; opened and closed with the gateway.

    Remote agents share one pooled client; each in-process app gets a client of its
    own over the streaming ASGI transport, and its lifespan runs between
    :meth:`open` and :meth:`close`.
    """

    def __init__(
        self,
        remote: Mapping[str, str],
        apps: Mapping[str, tuple[ASGIApp, str]],
        network_client: httpx.AsyncClient,
    ) -> None:
        self._network_client = network_client
        self._apps = dict(apps)
        self._endpoints: dict[str, AgentEndpoint] = {
            name: AgentEndpoint(name, url, network_client, in_process=False) for name, url in remote.items()
        }
        self._lifespans = [AppLifespan(app) for app, _path in self._apps.values()]
        for lifespan, (name, (app, path)) in zip(self._lifespans, self._apps.items(), strict=True):
            client = httpx.AsyncClient(
                transport=StreamingASGITransport(app, state=lifespan.state),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            )
            url = f"http://{_IN_PROCESS_HOST}/{path.lstrip('/')}"
            self._endpoints[name] = AgentEndpoint(name, url, client, in_process=True)
        self._started: list[AppLifespan] = []

    @classmethod
    def from_targets(
        cls,
        targets: Mapping[str, str],
        network_client: httpx.AsyncClient,
        apps: Mapping[str, ASGIApp | tuple[ASGIApp, str]] | None = None,
    ) -> AgentDirectory:
        """Agents from configured targets (URLs or app specs) plus app objects given directly."""
        remote: dict[str, str] = {}
        loaded: dict[str, tuple[ASGIApp, str]] = {}
        for name, target in targets.items():
            spec = AppSpec.parse(target)
            if spec is None:
                remote[name] = target
            else:
                loaded[name] = (spec.load(), spec.path)
        for name, given in (apps or {}).items():
            loaded[name] = given if isinstance(given, tuple) else (given, "/")
            remote.pop(name, None)
        return cls(remote, loaded, network_client)

    def get(self, name: str) -> AgentEndpoint | None:
        return self._endpoints.get(name)

    def names(self) -> list[str]:
        return sorted(self._endpoints)

    async def open(self) -> None:
        for lifespan in self._lifespans:
            await lifespan.startup()
            self._started.append(lifespan)

    async def close(self) -> None:
        try:
            while self._started:
                await self._started.pop().shutdown()
        finally:
            for endpoint in self._endpoints.values():
                if endpoint.in_process:
                    await endpoint.client.aclose()
