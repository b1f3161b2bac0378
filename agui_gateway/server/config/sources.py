"""Where the configuration comes from: defaults < config file < environment < flags.

:func:`load_config` puts them together; :func:`read_config_file`, :func:`read_environment`
and :func:`read_store_flags` each turn one source into :class:`~.model.GatewayConfig`
fields (through :func:`~.parsing.fields_from_mapping`, one set of rules and messages
for every source).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from agui_gateway.server.config.model import GatewayConfig
from agui_gateway.server.config.parsing import fields_from_mapping
from agui_gateway.server.errors import ConfigError

ENV_PREFIX = "AGUI_GATEWAY_"


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
    return fields_from_mapping(doc, str(path))


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
    "drain_timeout",
    "request_timeout",
    "keep_alive_timeout",
    "max_connections",
    "retention",
    "store_outage_budget",
    "store_outage_buffer",
    "store_outage_total_buffer",
)


def read_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """The dataclass fields the ``AGUI_GATEWAY_*`` environment variables set."""
    doc = {key: env[ENV_PREFIX + key.upper()] for key in _ENV_KEYS if ENV_PREFIX + key.upper() in env}
    return fields_from_mapping(doc, "environment")


def read_store_flags(flags: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass fields of the flags parsed like the config file (``store``, ``redis_prefix``,
    ``lease_ttl``, ``replica_id``, ``drain_timeout``, ``request_timeout``, ``keep_alive_timeout``,
    ``max_connections``, ``retention``, ``store_outage_budget``, ``store_outage_buffer``).

    Unlike the other overrides, ``store = "file"`` must replace a Redis URL of the
    config file, so the result keeps ``redis_url = None`` when the flag names the file store.
    """
    return fields_from_mapping(flags, "command line")


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
