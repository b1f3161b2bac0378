"""Gateway configuration: one dataclass, loaded from defaults < config file < environment < flags.

A config file is TOML (``.toml``) or JSON (anything else)::

    host = "0.0.0.0"
    port = 8000
    data = "./agui-data"
    fsync = "always"            # always | interval | never
    heartbeat = 15              # seconds between SSE comment heartbeats
    max_body_bytes = 16777216
    cors_origins = ["https://ui.example.com"]   # browser UIs on other origins; "*" = any
    max_streams = 4096          # concurrent event streams per process (503 beyond)
    max_streams_per_token = 512
    drain_timeout = 25          # seconds runs in progress may go on after SIGTERM
    request_timeout = 30        # seconds for a request's head and body to arrive (else 408)
    keep_alive_timeout = 5      # seconds an idle kept-alive connection stays open
    max_connections = 10000     # open connections (default: what the descriptor limit allows)
    retention = "30d"           # delete threads idle longer (30d, 12h, 15m, 90s); off by default
    store_outage_budget = 60    # seconds a run rides out a store outage (then its RUN_ERROR)
    store_outage_buffer = 16777216        # bytes of events a run holds during an outage, at most
    store_outage_total_buffer = 268435456 # the same, for all runs of the process together
    store = "redis://redis.internal:6379/0"     # default "file"; rediss:// for TLS
                                # (rediss://...?ssl_ca_certs=/path/ca.pem: a private CA)
    redis_prefix = "agui"       # key prefix (several deployments can share one Redis)
    redis_password = "..."      # when the URL carries none
    lease_ttl = 10              # seconds a dead replica's run stays open at most
    replica_id = "gw-1"         # stable identity of this process among the replicas (see below)
    [agents]
    research = "http://127.0.0.1:9000/agent"      # a remote agent
    planner = "my_agents.planner:app/agent"        # an ASGI app run in this process
    [agents.support]                               # an agent with options
    url = "http://127.0.0.1:9001/"                 # or: app = "module:attribute[/path]"
    history = "gateway"         # client (default): the caller sends the transcript;
                                # gateway: the gateway sends the stored thread + new messages
    capabilities = { tools = { supported = true } }   # AG-UI capabilities it declares
    [timeouts]                  # upstream agent, seconds
    connect = 10
    read = 300                  # longest silence between two bytes of the agent's stream
    total = 21600               # a whole run (default 6 h); 0 for no limit
    [[tokens]]
    token = "s3cret"
    access = "write"            # read | write | delete (each includes the ones before it)
    threads = ["team-a-"]       # thread-id prefixes; "*" is every thread

Environment: ``AGUI_GATEWAY_HOST``, ``_PORT``, ``_DATA``, ``_AGENTS`` (``name=url,name=url``),
``_TOKENS`` (a JSON list like ``[[tokens]]`` above, or ``TOKEN:ACCESS:PREFIX[,PREFIX]``
entries separated by ``;`` or whitespace), ``_INSECURE`` (1/true), ``_FSYNC``,
``_HEARTBEAT``, ``_MAX_BODY_BYTES``, ``_STORE`` (``file`` or a ``redis://`` / ``rediss://`` URL;
``_REDIS_URL`` is the same), ``_REDIS_PREFIX``, ``_REDIS_PASSWORD``, ``_LEASE_TTL``, ``_REPLICA_ID``,
``_MAX_STREAMS``, ``_MAX_STREAMS_PER_TOKEN``, ``_DRAIN_TIMEOUT``, ``_REQUEST_TIMEOUT``,
``_KEEP_ALIVE_TIMEOUT``, ``_MAX_CONNECTIONS``, ``_RETENTION`` (``30d``, ``12h``, ``90s``; off by
default), ``_STORE_OUTAGE_BUDGET``, ``_STORE_OUTAGE_BUFFER``, ``_STORE_OUTAGE_TOTAL_BUFFER``,
``_CORS_ORIGINS`` (origins separated by commas or whitespace).

``replica_id`` (Redis store): without it every process is a new replica, and a run it
was driving when it died stays open until its lease lapses (``lease_ttl``). A process
restarted with the same id closes those runs at once. Never give two live processes
the same id: each would close the other's runs when it starts.
"""

from agui_gateway.server.config.model import (
    Access,
    AgentOptions,
    GatewayConfig,
    HistoryMode,
    TokenGrant,
)
from agui_gateway.server.config.parsing import parse_agents, parse_cors_origins, parse_tokens
from agui_gateway.server.config.sources import (
    ENV_PREFIX,
    load_config,
    read_config_file,
    read_environment,
    read_store_flags,
)
from agui_gateway.server.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "Access",
    "AgentOptions",
    "ConfigError",
    "GatewayConfig",
    "HistoryMode",
    "TokenGrant",
    "load_config",
    "parse_agents",
    "parse_cors_origins",
    "parse_tokens",
    "read_config_file",
    "read_environment",
    "read_store_flags",
]
