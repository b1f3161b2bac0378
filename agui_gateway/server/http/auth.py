"""Who may bind where, and which bearer token may read or write which threads.

Policy:

* No tokens configured: the gateway is open, so it may only listen on a
  loopback address (it says so in the log). Listening anywhere else without
  tokens needs ``--insecure``.
* Tokens configured: every thread endpoint needs ``Authorization: Bearer T``
  (or ``?access_token=T`` for EventSource, which cannot set headers). Each token
  grants ``read``, ``write`` or ``delete`` (each includes the ones before it) on
  thread ids starting with one of its prefixes. Knowing a thread id grants nothing by itself.
* ``--insecure`` turns checking off even when tokens are configured.

Handlers call :meth:`Authorizer.require` with the thread they touch; the
thread id of a run is inside the body, which is why this is a per-handler check
rather than a path-based middleware.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from starlette.requests import HTTPConnection

from agui_gateway.server.config import Access, GatewayConfig, TokenGrant
from agui_gateway.server.errors import Forbidden, InsecureBindError, Unauthorized

log = logging.getLogger("agui_gateway.server.auth")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(config: GatewayConfig) -> str:
    """Refuse an unprotected public bind; return the line to log about access control."""
    if config.insecure:
        return (
            f"WARNING: --insecure: no access control on {config.host}:{config.port}; "
            "anyone who can reach it can read and write every thread"
        )
    if config.tokens:
        return f"bearer tokens required ({len(config.tokens)} configured)"
    if not is_loopback(config.host):
        raise InsecureBindError(
            f"refusing to listen on {config.host} without access control: configure bearer "
            "tokens (config file 'tokens' or AGUI_GATEWAY_TOKENS) or pass --insecure"
        )
    return (
        f"no tokens configured: listening on {config.host} (loopback) only; "
        "configure tokens to listen on other addresses"
    )


class Authorizer:
    """Checks requests against the configured token grants."""

    def __init__(self, tokens: tuple[TokenGrant, ...], enabled: bool) -> None:
        self._tokens = tokens
        self.enabled = enabled

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Authorizer:
        return cls(config.tokens, enabled=bool(config.tokens) and not config.insecure)

    def grant_of(self, conn: HTTPConnection) -> TokenGrant | None:
        """The grant of the request's token; None when checking is off. Raises :class:`Unauthorized`."""
        if not self.enabled:
            return None
        presented = _presented_token(conn)
        if presented is None:
            raise Unauthorized("a bearer token is required (Authorization: Bearer TOKEN)")
        found: TokenGrant | None = None
        encoded = presented.encode()
        for grant in self._tokens:  # compare against every token: no early exit timing
            if hmac.compare_digest(grant.token.encode(), encoded):
                found = grant
        if found is None:
            raise Unauthorized("unknown bearer token")
        return found

    def require(self, conn: HTTPConnection, thread_id: str, need: Access) -> None:
        grant = self.grant_of(conn)
        if grant is not None and not grant.allows(thread_id, need):
            raise Forbidden(f"this token may not {need} thread {thread_id!r}")

    def require_any(self, conn: HTTPConnection) -> TokenGrant | None:
        """Any valid token (for endpoints that expose no thread, like /metrics)."""
        return self.grant_of(conn)

    def may_read(self, grant: TokenGrant | None, thread_id: str) -> bool:
        return grant is None or grant.allows(thread_id, "read")


def _presented_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return conn.query_params.get("access_token") or None
