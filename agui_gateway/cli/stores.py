"""The store a command works on, chosen as ``serve`` chooses it (flags, config file, environment).

``--store file`` (the default, under ``--data``) or a Redis URL; ``--redis-prefix``;
``--config FILE``; the environment (``AGUI_GATEWAY_STORE``, ``AGUI_GATEWAY_DATA``,
``AGUI_GATEWAY_REDIS_PASSWORD``, ...) as for ``serve``. The commands that use it are
meant for a stopped gateway's store (a file store is owned by one process).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from agui_gateway.server.config import ConfigError, GatewayConfig, load_config, read_store_flags
from agui_gateway.store.base import StoreError, ThreadStore
from agui_gateway.store.factory import build_store, describe_store

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class StoreChoice:
    store: str | None
    data: Path | None
    redis_prefix: str | None
    config_file: Path | None


def store_options(command: _F) -> _F:
    """The options naming a store (the command takes ``store``, ``data``, ``redis_prefix``
    and ``config_file``; see :class:`StoreChoice`)."""
    options = [
        click.option(
            "--store",
            default=None,
            metavar="file|URL",
            help="'file' (default, under --data) or redis://[:PASSWORD@]HOST:PORT/DB (rediss:// for TLS).",
        ),
        click.option(
            "--data",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Data directory of the file store (default ./agui-data).",
        ),
        click.option("--redis-prefix", default=None, help="Prefix of every Redis key (default 'agui')."),
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            default=None,
            help="The gateway's config file, for its store settings.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def store_config(choice: StoreChoice) -> GatewayConfig:
    flags = {"store": choice.store, "redis_prefix": choice.redis_prefix}
    try:
        store_fields = read_store_flags({k: v for k, v in flags.items() if v is not None})
        config = load_config(choice.config_file, os.environ, data_dir=choice.data)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return replace(config, **store_fields)


@asynccontextmanager
async def opened_store(choice: StoreChoice) -> AsyncIterator[ThreadStore]:
    config = store_config(choice)
    if not config.redis_url and not (config.data_dir / "threads").is_dir() and choice.data is None:
        click.echo(f"note: no file store under {config.data_dir} yet (use --data DIR)", err=True)
    store = build_store(config)
    try:
        await store.open()
    except StoreError as exc:
        raise click.ClickException(f"cannot open the store {describe_store(config)}: {exc}") from None
    try:
        yield store
    finally:
        await store.close()
