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

from agui_gateway.cli.stores import StoreChoice, opened_store, store_config, store_options
from agui_gateway.store.base import StoreError
from agui_gateway.store.factory import describe_store


@click.command()
@click.option("--full", is_flag=True, help="Read every thread's log and rebuild the index from what they hold.")
@store_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def recover(
    full: bool,
    store: str | None,
    data: Path | None,
    redis_prefix: str | None,
    config_file: Path | None,
    as_json: bool,
) -> None:
    """Show the threads with a run left open (the store's open-run index); --full rebuilds it."""
    choice = StoreChoice(store, data, redis_prefix, config_file)
    result = asyncio.run(_recover(choice, full))
    result["store"] = describe_store(store_config(choice))
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


async def _recover(choice: StoreChoice, full: bool) -> dict[str, Any]:
    async with opened_store(choice) as store:
        try:
            if not full:
                return {"open": await store.open_run_threads()}
            repair = await store.repair_open_runs()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        return {
            "threads": repair.threads,
            "open": list(repair.open),
            "added": list(repair.added),
            "removed": list(repair.removed),
        }


def _names(threads: list[str]) -> str:
    return ", ".join(threads) if threads else "none"
