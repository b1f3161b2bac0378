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
    access = "write"            # read | write (write includes read)
    threads = ["team-a-"]       # thread-id prefixes; "*" is every thread

Environment: ``AGUI_GATEWAY_HOST``, ``_PORT``, ``_DATA``, ``_AGENTS`` (``name=url,name=url``),
``_TOKENS`` (a JSON list like ``[[tokens]]`` above, or ``TOKEN:ACCESS:PREFIX[,PREFIX]``
entries separated by ``;`` or whitespace), ``_INSECURE`` (1/true), ``_FSYNC``,
``_HEARTBEAT``, ``_MAX_BODY_BYTES``, ``_STORE`` (``file`` or a ``redis://`` / ``rediss://`` URL;
``_REDIS_URL`` is the same), ``_REDIS_PREFIX``, ``_REDIS_PASSWORD``, ``_LEASE_TTL``, ``_REPLICA_ID``,
``_MAX_STREAMS``, ``_MAX_STREAMS_PER_TOKEN``, ``_CORS_ORIGINS`` (origins separated by commas or
whitespace).

``replica_id`` (Redis store): without it every process is a new replica, and a run it
was driving when it died stays open until its lease lapses (``lease_ttl``). A process
restarted with the same id closes those runs at once. Never give two live processes
the same id: each would close the other's runs when it starts.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

from agui_gateway.server.agents import is_agent_target
from agui_gateway.server.store_url import parse_store
from agui_gateway.store.file import FsyncPolicy
from agui_gateway.upstream.agent_http import UpstreamTimeouts

Access = Literal["read", "write"]

_FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)
ENV_PREFIX = "AGUI_GATEWAY_"


class ConfigError(ValueError):
    """The configuration is malformed; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """One bearer token: what it may do (read, or write which includes read) and where."""

    token: str
    access: Access
    prefixes: tuple[str, ...]  # thread-id prefixes; "" matches every thread

    def allows(self, thread_id: str, need: Access) -> bool:
        if need == "write" and self.access != "write":
            return False
        return any(thread_id.startswith(prefix) for prefix in self.prefixes)

    @property
    def all_threads(self) -> bool:
        return "" in self.prefixes


HistoryMode = Literal["client", "gateway"]
_HISTORY_MODES: tuple[str, ...] = get_args(HistoryMode)


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
    # at most this many, holding at most about this many bytes of replay state.
    cached_threads: int = 256
    cache_bytes: int = 256 * 1024 * 1024
    # A run the log shows open but no task of this process owns was cut off by a
    # crash: close it with a stored RUN_ERROR at first open. With replicas on Redis, a
    # run counts as cut off once its replica's lease lapsed (see server/leases.py).
    recover_open_runs: bool = True
    redis_url: str | None = None  # the store: None = the file store (see store_url.py)
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

    def options_of(self, agent: str) -> AgentOptions:
        return self.agent_options.get(agent) or AgentOptions()

    def with_overrides(self, **overrides: Any) -> GatewayConfig:
        """A copy with the given fields replaced; ``None`` values are ignored."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


def parse_tokens(value: Any) -> tuple[TokenGrant, ...]:
    """Tokens from a config value: a list of tables/objects, or the compact env string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"tokens: not valid JSON: {exc}") from exc
        else:
            return tuple(_compact_token(entry) for entry in text.replace(";", " ").split())
    if not isinstance(value, list):
        raise ConfigError("tokens: expected a list of {token, access, threads}")
    return tuple(_token_entry(entry) for entry in value)


def _compact_token(entry: str) -> TokenGrant:
    parts = entry.split(":", 2)
    if len(parts) != 3:
        raise ConfigError(f"tokens: {_redact(entry)!r} is not TOKEN:ACCESS:PREFIX[,PREFIX]")
    token, access, prefixes = parts
    return _grant(token, access, prefixes.split(","))


def _token_entry(entry: Any) -> TokenGrant:
    if not isinstance(entry, Mapping):
        raise ConfigError("tokens: each entry must be an object with token, access, threads")
    threads = entry.get("threads", entry.get("prefixes"))
    if isinstance(threads, str):
        threads = [threads]
    if not isinstance(threads, list) or not all(isinstance(t, str) for t in threads):
        raise ConfigError("tokens: 'threads' must be a list of thread-id prefixes ('*' = all)")
    return _grant(entry.get("token"), entry.get("access"), threads)


def _grant(token: Any, access: Any, prefixes: list[str]) -> TokenGrant:
    if not isinstance(token, str) or len(token) < 8 or any(c.isspace() for c in token):
        raise ConfigError("tokens: a token must be a string of at least 8 non-space characters")
    if access not in ("read", "write"):
        raise ConfigError(f"tokens: access must be 'read' or 'write', not {access!r}")
    if not prefixes:
        raise ConfigError("tokens: a token needs at least one thread prefix ('*' = all)")
    normalised = tuple("" if p == "*" else p for p in prefixes)
    return TokenGrant(token=token, access=access, prefixes=normalised)


def _redact(entry: str) -> str:
    return entry.split(":", 1)[0][:3] + "…" if entry else entry


def parse_agents(value: Any) -> dict[str, str]:
    """Agent targets from a table/object or from ``name=target`` strings (comma-separated or a list).

    A target is an ``http(s)://`` URL or an in-process app ``module:attribute[/path]``;
    a table value may also be a table with ``url`` or ``app`` (see :func:`parse_agent_options`).
    """
    return {name: target for name, (target, _options) in _agent_entries(value).items()}


def parse_agent_options(value: Any) -> dict[str, AgentOptions]:
    """The options of the agents given as tables (``history``, ``capabilities``)."""
    return {name: options for name, (_target, options) in _agent_entries(value).items() if options is not None}


def _agent_entries(value: Any) -> dict[str, tuple[str, AgentOptions | None]]:
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list | tuple):
            raise ConfigError("agents: expected NAME=URL entries or a table")
        items = []
        for entry in entries:
            name, sep, url = str(entry).strip().partition("=")
            if not sep:
                raise ConfigError(f"agents: {entry!r} is not NAME=URL or NAME=module:attribute")
            items.append((name.strip(), url.strip()))
    agents: dict[str, tuple[str, AgentOptions | None]] = {}
    for name, entry in items:
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"agents: invalid agent name {name!r}")
        options: AgentOptions | None = None
        if isinstance(entry, Mapping):
            target, options = _agent_table(name, entry)
        else:
            target = entry
        if not isinstance(target, str) or not is_agent_target(target):
            raise ConfigError(
                f"agents: the target of {name!r} must be an http:// or https:// URL "
                "or an in-process app as module:attribute[/path]"
            )
        agents[name] = (target, options)
    return agents


def _agent_table(name: str, table: Mapping[str, Any]) -> tuple[Any, AgentOptions]:
    unknown = set(table) - {"url", "app", "history", "capabilities"}
    if unknown:
        raise ConfigError(f"agents.{name}: unknown key(s) {', '.join(sorted(unknown))}")
    if ("url" in table) == ("app" in table):
        raise ConfigError(f"agents.{name}: give exactly one of url or app")
    history = table.get("history", "client")
    if history not in _HISTORY_MODES:
        raise ConfigError(f"agents.{name}.history: expected one of {', '.join(_HISTORY_MODES)}")
    capabilities = table.get("capabilities", {})
    if not isinstance(capabilities, Mapping):
        raise ConfigError(f"agents.{name}.capabilities: expected a table/object")
    return table.get("url", table.get("app")), AgentOptions(history=history, capabilities=dict(capabilities))


_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#\s@]+")


def parse_cors_origins(value: Any) -> tuple[str, ...]:
    """CORS origins from a list or a string of origins separated by commas or whitespace.

    An origin is what a browser sends in ``Origin``: ``scheme://host[:port]``, no path
    and no trailing slash (it is compared as a string, so ``https://ui.example.com/``
    would never match); scheme and host are lower-cased as browsers send them. ``*``
    allows every origin.
    """
    entries = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
        raise ConfigError("cors_origins: expected a list of origins like 'https://ui.example.com', or '*'")
    origins: list[str] = []
    for entry in entries:
        origin = entry.strip().lower()
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(
                f"cors_origins: {entry!r} is not an origin: write scheme://host[:port] "
                "with no path or trailing slash (e.g. 'https://ui.example.com'), or '*'"
            )
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected a boolean, got {value!r}")


def _number(name: str, value: Any, kind: type = float, minimum: float = 0) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from exc
    if number < minimum:
        raise ConfigError(f"{name}: must be at least {minimum}")
    return number


def _fields_from_mapping(doc: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """Translate a config document (file keys or env keys, lower-cased) into dataclass fields."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{origin}: {key}"
        if key == "host":
            out["host"] = str(value)
        elif key == "port":
            out["port"] = _number(name, value, int, 0)
        elif key in ("data", "data_dir"):
            out["data_dir"] = Path(str(value))
        elif key == "agents":
            out["agents"] = parse_agents(value)
            out["agent_options"] = parse_agent_options(value)
        elif key == "demo":
            out["demo"] = _parse_bool(name, value)
        elif key == "demo_pace":
            out["demo_pace"] = _number(name, value, float, 0)
        elif key == "tokens":
            out["tokens"] = parse_tokens(value)
        elif key == "insecure":
            out["insecure"] = _parse_bool(name, value)
        elif key == "fsync":
            if value not in _FSYNC_POLICIES:
                raise ConfigError(f"{name}: expected one of {', '.join(_FSYNC_POLICIES)}")
            out["fsync"] = value
        elif key == "fsync_interval_ms":
            out["fsync_interval_ms"] = _number(name, value, int, 1)
        elif key == "heartbeat":
            out["heartbeat_s"] = _number(name, value, float, 0.01)
        elif key == "max_body_bytes":
            out["max_body_bytes"] = _number(name, value, int, 1024)
        elif key == "cached_threads":
            out["cached_threads"] = _number(name, value, int, 0)
        elif key == "cache_bytes":
            out["cache_bytes"] = _number(name, value, int, 0)
        elif key == "recover_open_runs":
            out["recover_open_runs"] = _parse_bool(name, value)
        elif key in ("redis_url", "store"):
            try:
                out["redis_url"] = parse_store(value)
            except ValueError as exc:
                raise ConfigError(f"{name}: expected 'file' or a Redis URL: {exc}") from None
        elif key == "redis_prefix":
            out["redis_prefix"] = _redis_prefix(name, value)
        elif key == "redis_password":
            out["redis_password"] = str(value) or None
        elif key == "lease_ttl":
            out["lease_ttl_s"] = _number(name, value, float, 0.1)
        elif key == "replica_id":
            out["replica_id"] = _replica_id(name, value)
        elif key == "cors_origins":
            out["cors_origins"] = parse_cors_origins(value)
        elif key == "max_streams":
            out["max_streams"] = _number(name, value, int, 1)
        elif key == "max_streams_per_token":
            out["max_streams_per_token"] = _number(name, value, int, 1)
        elif key == "timeouts":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name}: expected a table with connect, read, total")
            out["timeouts"] = _timeouts(value, name)
        else:
            raise ConfigError(f"{name}: unknown setting")
    return out


def _redis_prefix(name: str, value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in "{}") or any(c.isspace() for c in text):
        raise ConfigError(f"{name}: a key prefix must be non-empty, without spaces, '{{' or '}}'")
    return text


_REPLICA_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _replica_id(name: str, value: Any) -> str:
    text = str(value)
    if not _REPLICA_ID.fullmatch(text):
        raise ConfigError(f"{name}: a replica id is 1 to 128 letters, digits, '.', '_', ':' or '-'")
    return text


def _timeouts(doc: Mapping[str, Any], origin: str) -> UpstreamTimeouts:
    base = UpstreamTimeouts()
    unknown = set(doc) - {"connect", "read", "total"}
    if unknown:
        raise ConfigError(f"{origin}: unknown timeout(s) {', '.join(sorted(unknown))}")
    total = doc.get("total", base.total)
    return UpstreamTimeouts(
        connect=_number(f"{origin}.connect", doc.get("connect", base.connect)),
        read=_number(f"{origin}.read", doc.get("read", base.read)),
        total=None if total in (None, 0, "") else _number(f"{origin}.total", total),
    )


def read_config_file(path: Path) -> dict[str, Any]:
    """The dataclass fields a config file sets."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        doc = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path}: expected a table/object at the top")
    return _fields_from_mapping(doc, str(path))


_ENV_KEYS = (
    "host",
    "port",
    "data",
    "agents",
    "tokens",
    "insecure",
    "fsync",
    "heartbeat",
    "max_body_bytes",
    "redis_url",
    "store",
    "redis_prefix",
    "redis_password",
    "lease_ttl",
    "replica_id",
    "cors_origins",
    "max_streams",
    "max_streams_per_token",
)


def read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The dataclass fields the ``AGUI_GATEWAY_*`` environment variables set."""
    doc = {key: env[ENV_PREFIX + key.upper()] for key in _ENV_KEYS if ENV_PREFIX + key.upper() in env}
    return _fields_from_mapping(doc, "environment")


def read_store_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass fields of the store flags (``store``, ``redis_prefix``, ``lease_ttl``, ``replica_id``).

    Unlike the other overrides, ``store = "file"`` must replace a Redis URL of the
    config file, so the result keeps ``redis_url = None`` when the flag names the file store.
    """
    return _fields_from_mapping(flags, "command line")


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> GatewayConfig:
    """Defaults, then the config file, then the environment, then explicit overrides (flags).

    ``path`` defaults to ``$AGUI_GATEWAY_CONFIG`` when set. Overrides that are ``None``
    are ignored, so click options can be passed straight through.
    """
    env = env if env is not None else {}
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    fields: dict[str, Any] = {}
    if path is not None:
        fields.update(read_config_file(path))
    fields.update(read_environment(env))
    extra_agents = overrides.pop("extra_agents", None)
    config = GatewayConfig(**fields).with_overrides(**overrides)
    if extra_agents:
        config = replace(config, agents={**config.agents, **extra_agents})
    return config
