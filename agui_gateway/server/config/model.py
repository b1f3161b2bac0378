"""The gateway's configuration as one immutable value: :class:`GatewayConfig` and its parts.

Where the values come from (defaults < config file < environment < flags) and how each
is parsed and checked is :mod:`.sources` and :mod:`.parsing`; the file format is in
this package's docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from agui_gateway.store.file import FsyncPolicy
from agui_gateway.upstream.agent_http import UpstreamTimeouts

# Access levels, each including the ones before it: read < write < delete. Deleting a
# thread destroys what writing only adds to, so a token that may write may not delete
# unless it says so.
Access = Literal["read", "write", "delete"]
ACCESS_LEVELS: tuple[Access, ...] = get_args(Access)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """One bearer token: what it may do (an :data:`Access` level, which includes the lower
    ones) and where."""

    token: str
    access: Access
    prefixes: tuple[str, ...]  # thread-id prefixes; "" matches every thread

    def allows(self, thread_id: str, need: Access) -> bool:
        if ACCESS_LEVELS.index(need) > ACCESS_LEVELS.index(self.access):
            return False
        return any(thread_id.startswith(prefix) for prefix in self.prefixes)

    @property
    def all_threads(self) -> bool:
        return "" in self.prefixes


HistoryMode = Literal["client", "gateway"]
HISTORY_MODES: tuple[str, ...] = get_args(HistoryMode)


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """How the gateway treats one agent, beyond where it is."""

    # "client": forward the caller's messages as sent (the caller holds the transcript).
    # "gateway": build the agent's messages from the stored thread plus the caller's new
    # ones; a caller may send only its new message, and cannot rewrite stored ones.
    history: HistoryMode = "client"
    # AG-UI capabilities (camelCase JSON, as AgentCapabilities) the agent declares; the
    # gateway merges its own (streaming, resumable) over them.
    capabilities: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("agui-data")
    # name -> an http(s) URL, or "module:attribute[/path]" for an ASGI app run in process
    agents: Mapping[str, str] = field(default_factory=dict)
    agent_options: Mapping[str, AgentOptions] = field(default_factory=dict)
    demo: bool = False
    demo_pace: float = 1.0  # 0 streams the demo agent's script without pauses
    tokens: tuple[TokenGrant, ...] = ()
    insecure: bool = False
    fsync: FsyncPolicy = "always"
    fsync_interval_ms: int = 50
    timeouts: UpstreamTimeouts = field(default_factory=UpstreamTimeouts)
    heartbeat_s: float = 15.0
    max_body_bytes: int = 16 * 1024 * 1024
    # Idle thread runtimes (no run, no subscriber) kept in memory for fast replays:
    # at most this many, and idle ones are dropped while the replay state of every runtime
    # alive (busy ones included) holds more than about this many bytes.
    cached_threads: int = 256
    cache_bytes: int = 256 * 1024 * 1024
    # A run the log shows open but no task of this process owns was cut off by a
    # crash: close it with a stored RUN_ERROR at first open. With replicas on Redis, a
    # run counts as cut off once its replica's lease lapsed (see server/runtime/leases.py).
    recover_open_runs: bool = True
    redis_url: str | None = None  # the store: None = the file store (see store/factory.py)
    redis_prefix: str = "agui"  # every Redis key starts with it: several gateways can share one Redis
    redis_password: str | None = None  # used when the URL carries none
    # A run lease outlives its last renewal by this long: a replica that died mid-run
    # leaves its thread open at most this long before another replica closes the run.
    lease_ttl_s: float = 10.0
    # This process's identity among the replicas, recorded with its leases; stable across
    # restarts, so a restart closes the runs its previous process left at once. None: a
    # new identity per process (its runs stay open until their leases lapse).
    replica_id: str | None = None
    inspector: bool = False  # mount the agui-inspector extra at /ui/inspector
    # Origins (scheme://host[:port]) whose pages may call the API from a browser, or
    # "*" for any; empty: no CORS headers at all. Tokens still decide what a call may do.
    cors_origins: tuple[str, ...] = ()
    # Concurrent event streams (runs' callers, watchers, connects): per process (further
    # lowered to what RLIMIT_NOFILE allows) and per bearer token; beyond them a 503.
    max_streams: int = 4096
    max_streams_per_token: int = 512
    # On SIGTERM, runs in progress go on to their end for at most this long (then they get
    # a stored RUN_ERROR): 25 s fits Kubernetes' default grace period of 30 s.
    drain_timeout_s: float = 25.0
    # Slow and idle connections (server/http/connections.py): a request's head and body
    # must arrive within request_timeout_s (else 408, closed); a kept-alive connection
    # idle for keep_alive_timeout_s is closed; at most max_connections are open (None:
    # what RLIMIT_NOFILE leaves room for, and never more than that).
    request_timeout_s: float = 30.0
    keep_alive_timeout_s: float = 5.0
    max_connections: int | None = None
    # Threads whose last activity is older than this are deleted by a background sweep
    # (server/runtime/retention.py); on Redis their keys also expire that long after their
    # last activity. None: threads are kept until deleted.
    retention_s: float | None = None
    # A store outage that a run rides out (server/runtime/outage_buffer.py): the run keeps
    # reading its agent and holds what it read for at most store_outage_budget_s seconds
    # and store_outage_buffer_bytes bytes (and all runs together at most
    # store_outage_total_bytes); beyond either the run ends with a RUN_ERROR. 60 s is twice
    # a 30 s failover (Sentinel, a managed Redis), room for noticing it and reconnecting.
    # 16 MiB per run holds 30 s of a fast agent at about 500 KB/s (a token stream is ~30 KB/s,
    # tool results and state snapshots add bursts); 256 MiB bounds the process's memory
    # whatever the number of runs caught in the outage.
    store_outage_budget_s: float = 60.0
    store_outage_buffer_bytes: int = 16 * 1024 * 1024
    store_outage_total_bytes: int = 256 * 1024 * 1024

    def options_of(self, agent: str) -> AgentOptions:
        return self.agent_options.get(agent) or AgentOptions()

    def with_overrides(self, **overrides: Any) -> GatewayConfig:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})
