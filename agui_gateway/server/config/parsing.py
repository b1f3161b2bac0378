"""Parsing and checking of single settings, wherever they come from (file, environment, flags).

Each parser takes what a TOML/JSON file or an environment variable holds and returns
the :class:`~.model.GatewayConfig` field's value, or raises :class:`ConfigError`
naming the setting and what is wrong with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args

from agui_gateway.server.config.model import ACCESS_LEVELS, HISTORY_MODES, AgentOptions, TokenGrant
from agui_gateway.server.errors import ConfigError
from agui_gateway.store.factory import parse_store
from agui_gateway.store.file import FsyncPolicy
from agui_gateway.upstream.agent_http import UpstreamTimeouts
from agui_gateway.upstream.agents import is_agent_target

FSYNC_POLICIES: tuple[str, ...] = get_args(FsyncPolicy)


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
    if access not in ACCESS_LEVELS:
        raise ConfigError(f"tokens: access must be 'read', 'write' or 'delete', not {access!r}")
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
    if history not in HISTORY_MODES:
        raise ConfigError(f"agents.{name}.history: expected one of {', '.join(HISTORY_MODES)}")
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


def fields_from_mapping(doc: Mapping[str, Any], origin: str) -> dict[str, Any]:
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
            if value not in FSYNC_POLICIES:
                raise ConfigError(f"{name}: expected one of {', '.join(FSYNC_POLICIES)}")
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
        elif key == "drain_timeout":
            out["drain_timeout_s"] = _number(name, value, float, 0)
        elif key == "request_timeout":
            out["request_timeout_s"] = _number(name, value, float, 0.1)
        elif key == "keep_alive_timeout":
            out["keep_alive_timeout_s"] = _number(name, value, float, 0.1)
        elif key == "max_connections":
            out["max_connections"] = _number(name, value, int, 1)
        elif key == "retention":
            out["retention_s"] = parse_duration(name, value)
        elif key == "store_outage_budget":
            out["store_outage_budget_s"] = _number(name, value, float, 0)
        elif key == "store_outage_buffer":
            out["store_outage_buffer_bytes"] = _number(name, value, int, 0)
        elif key == "store_outage_total_buffer":
            out["store_outage_total_bytes"] = _number(name, value, int, 0)
        elif key == "max_streams_per_token":
            out["max_streams_per_token"] = _number(name, value, int, 1)
        elif key == "timeouts":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name}: expected a table with connect, read, total")
            out["timeouts"] = _timeouts(value, name)
        else:
            raise ConfigError(f"{name}: unknown setting")
    return out


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, value: Any) -> float | None:
    """A duration such as ``30d``, ``12h``, ``15m`` or ``90s`` in seconds (a bare number is
    seconds); ``off``, ``none`` or ``0`` for none."""
    text = str(value).strip().lower()
    if text in ("off", "none", "0", ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = f"{value}s"
    found = _DURATION.fullmatch(text) or _DURATION.fullmatch(text + "s")
    if found is None or float(found.group(1)) <= 0:
        raise ConfigError(f"{name}: expected a duration such as 30d, 12h, 15m or 90s (or 'off'), not {value!r}")
    return float(found.group(1)) * _DURATION_UNITS[found.group(2)]


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
