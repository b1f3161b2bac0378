"""``agui-gateway recover``: the store's open-run index, and its repair from the logs.

A gateway starting up closes the runs a crash left open by asking its store for the
threads with an open run (``ThreadStore.open_run_threads``), an index the store keeps
as runs start and end, so that a start costs O(open runs), not O(threads). The index
never misses an open run by itself; ``recover`` shows it, and ``recover --full`` reads
every log and rebuilds it, for an index lost or damaged outside the store's control
(a restored backup, a hand edit, keys deleted in Redis). Neither closes a run: the
gateway does that at its next start.

On the file store, run it with the gateway stopped (a data directory belongs to one
process); on Redis, at any time (each thread's entry is set atomically against the
appends of running replicas).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from agui_gateway.cli.serve import build_config
from agui_gateway.server.config import ConfigError
from agui_gateway.store.base import StoreError, ThreadStore
from agui_gateway.store.factory import build_store, describe_store


@click.command()
@click.option("--full", is_flag=True, help="Read every thread's log and rebuild the index from what they hold.")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory of the embedded store (default ./agui-data).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The gateway's config file (its store settings are used).",
)
@click.option("--store", default=None, metavar="file|URL", help="'file' (default, under --data) or a Redis URL.")
@click.option("--redis-prefix", default=None, help="Prefix of every Redis key (default 'agui').")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def recover(
    full: bool,
    data: Path | None,
    config_file: Path | None,
    store: str | None,
    redis_prefix: str | None,
    as_json: bool,
) -> None:
    """Show the threads with a run left open (the store's open-run index); --full rebuilds it."""
    try:
        config = build_config(
            config_file=config_file,
            data=data,
            store=store,
            redis_prefix=redis_prefix,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        result = asyncio.run(_recover(build_store(config), full))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    result["store"] = describe_store(config)
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
        return
    click.echo(f"store: {result['store']}")
    if full:
        click.echo(f"read the logs of {result['threads']} thread(s)")
        click.echo(f"added (open runs the index had missed): {_names(result['added'])}")
        click.echo(f"removed (threads without an open run): {_names(result['removed'])}")
    click.echo(f"threads with an open run ({len(result['open'])}): {_names(result['open'])}")
    if result["open"]:
        click.echo("the gateway closes their runs (a stored RUN_ERROR each) when it starts")


async def _recover(store: ThreadStore, full: bool) -> dict[str, Any]:
    await store.open()
    try:
        if not full:
            return {"open": await store.open_run_threads()}
        repair = await store.repair_open_runs()
        return {
            "threads": repair.threads,
            "open": list(repair.open),
            "added": list(repair.added),
            "removed": list(repair.removed),
        }
    finally:
        await store.close()


def _names(threads: list[str]) -> str:
    return ", ".join(threads) if threads else "none"
