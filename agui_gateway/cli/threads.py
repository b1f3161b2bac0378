"""``agui-gateway threads delete``, ``export`` and ``import``: a store's threads, offline.

Against a stopped gateway's store (any store ``serve`` takes: see :mod:`.stores`). The
archive format is documented in :mod:`agui_gateway.store.archive`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import click

from agui_gateway.cli.stores import StoreChoice, opened_store, store_options
from agui_gateway.store.archive import BadArchive, ExportReport, export_threads, import_archive
from agui_gateway.store.base import InvalidRecord, InvalidThreadId, StoreError, validate_thread_id


@click.group()
def threads() -> None:
    """Manage the threads of a (stopped) gateway's store."""


@threads.command("delete")
@click.argument("thread_ids", metavar="THREAD...", nargs=-1, required=True)
@store_options
@click.option("--force", is_flag=True, help="Delete a thread even while a run lease is live on it (Redis).")
def delete(
    thread_ids: tuple[str, ...],
    store: str | None,
    data: Path | None,
    redis_prefix: str | None,
    config_file: Path | None,
    force: bool,
) -> None:
    """Delete threads: their logs, checkpoints and every other key or file."""
    for thread_id in thread_ids:
        _check_id(thread_id)
    choice = StoreChoice(store, data, redis_prefix, config_file)
    outcomes = asyncio.run(_delete(choice, thread_ids, force))
    failed = False
    for thread_id, outcome in outcomes:
        if outcome == "deleted":
            click.echo(f"deleted {thread_id}")
            continue
        failed = True
        reason = {"missing": "no such thread", "leased": "a run holds its lease (stop it, or use --force)"}
        click.echo(f"error: {thread_id}: {reason.get(outcome, outcome)}", err=True)
    if failed:
        sys.exit(1)


async def _delete(choice: StoreChoice, thread_ids: tuple[str, ...], force: bool) -> list[tuple[str, str]]:
    async with opened_store(choice) as opened:
        try:
            return [(t, await opened.delete_thread(t, even_if_leased=force)) for t in thread_ids]
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


@click.command("export")
@click.argument("thread_ids", metavar="[THREAD...]", nargs=-1)
@store_options
@click.option("-o", "--output", "output_path", default="-", show_default=True, help="Archive file ('-': stdout).")
def export(
    thread_ids: tuple[str, ...],
    store: str | None,
    data: Path | None,
    redis_prefix: str | None,
    config_file: Path | None,
    output_path: str,
) -> None:
    """Write threads (all of them without THREAD) to a JSON-lines archive, records as stored."""
    for thread_id in thread_ids:
        _check_id(thread_id)
    choice = StoreChoice(store, data, redis_prefix, config_file)
    started = time.perf_counter()
    with _output(output_path) as out:
        report = asyncio.run(_export(choice, list(thread_ids) or None, out))
    took = time.perf_counter() - started
    click.echo(f"exported {report.threads} thread(s), {report.records} record(s) in {took:.2f} s", err=True)
    for thread_id in report.skipped:
        click.echo(f"warning: {thread_id}: not exported (no such thread, or deleted while read)", err=True)
    if thread_ids and report.skipped:
        sys.exit(1)


async def _export(choice: StoreChoice, thread_ids: list[str] | None, out: IO[bytes]) -> ExportReport:
    async with opened_store(choice) as opened:
        try:
            return await export_threads(opened, thread_ids, out)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None


@click.command("import")
@click.argument("archive_path", metavar="ARCHIVE")
@store_options
@click.option("--replace", is_flag=True, help="Replace threads the store already has (default: refuse them).")
def import_(
    archive_path: str,
    store: str | None,
    data: Path | None,
    redis_prefix: str | None,
    config_file: Path | None,
    replace: bool,
) -> None:
    """Restore the threads of an archive ('-': stdin) into a store, with their epochs."""
    choice = StoreChoice(store, data, redis_prefix, config_file)
    with _input(archive_path) as stream:
        asyncio.run(_import(choice, stream, replace))


async def _import(choice: StoreChoice, stream: IO[bytes], replace: bool) -> None:
    started = time.perf_counter()
    async with opened_store(choice) as opened:
        try:
            report = await import_archive(opened, stream, replace=replace)
        except (BadArchive, InvalidRecord, StoreError) as exc:
            raise click.ClickException(f"{exc} (the threads before it are imported)") from None
    took = time.perf_counter() - started
    click.echo(f"imported {report.threads} thread(s), {report.records} record(s) in {took:.2f} s", err=True)
    if report.refused:
        for thread_id in report.refused:
            click.echo(f"error: {thread_id}: the store has this thread (use --replace to overwrite it)", err=True)
        sys.exit(1)


def _check_id(thread_id: str) -> None:
    try:
        validate_thread_id(thread_id)
    except InvalidThreadId as exc:
        raise click.BadParameter(f"{thread_id!r}: {exc}") from None


@contextlib.contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    """stdout, or a file replaced atomically once the archive is whole."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    temp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temp, "wb") as handle:
            yield handle
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _input(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise click.FileError(path, hint=exc.strerror) from exc
    with handle:
        yield handle
