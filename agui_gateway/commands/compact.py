"""``agui-gateway compact`` and ``agui-gateway inspect``: offline tools for thread logs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
import orjson

from agui_gateway.jsonl import ReadStats, read_events, read_records
from agui_gateway.log_summary import LogSummary

_PROGRESS_MIN_BYTES = 8 << 20


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if path == "-":
        yield sys.stdin.buffer, None
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise click.FileError(path, hint=exc.strerror) from exc
    with handle:
        yield handle, os.fstat(handle.fileno()).st_size


@contextlib.contextmanager
def _progress(size: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for large files, only when stderr is a terminal."""
    if size is None or size < _PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=_stderr_console(),
    ) as progress:
        task = progress.add_task(label, total=size)
        yield lambda n: progress.advance(task, n)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _report_bad_lines(stats: ReadStats) -> None:
    if stats.bad_lines:
        shown = ", ".join(map(str, stats.bad_line_numbers))
        more = "" if stats.bad_lines <= len(stats.bad_line_numbers) else ", ..."
        click.echo(
            f"warning: skipped {stats.bad_lines} bad line(s) (line {shown}{more})", err=True
        )


@click.command()
@click.argument("input_path", metavar="IN.jsonl", type=str)
@click.option("-o", "--output", "output_path", default="-", show_default=True,
              help="Output JSONL file ('-' for stdout).")
@click.option("--mode", type=click.Choice(["snapshots", "deltas"]), default="snapshots",
              show_default=True,
              help="snapshots: finished runs folded into one snapshot run; "
                   "deltas: only concatenate streamed deltas, order preserved.")
def compact(input_path: str, output_path: str, mode: str) -> None:
    """Compact an AG-UI event log (IN.jsonl, '-' for stdin) for replay."""
    from agui_gateway.compaction import DeltaCompactor, SnapshotCompactor

    stats = ReadStats()
    with _open_input(input_path) as (stream, size), _progress(size, "compacting") as tick:
        events = read_events(stream, stats, tick)
        if mode == "snapshots":
            snapshots = SnapshotCompactor()
            for event in events:
                snapshots.feed(event)
            result = snapshots.replay_events()
        else:
            deltas = DeltaCompactor()
            for event in events:
                deltas.feed(event)
            result = deltas.events()
    _write_jsonl(result, output_path)
    _report_bad_lines(stats)


def _write_jsonl(events: list[dict[str, Any]], output_path: str) -> None:
    """Write one event per line; a file is replaced atomically, never left half-written."""
    dumps = orjson.dumps
    if output_path == "-":
        out = sys.stdout.buffer
        for event in events:
            out.write(dumps(event, option=orjson.OPT_APPEND_NEWLINE))
        out.flush()
        return
    tmp = f"{output_path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb", buffering=1 << 20) as handle:
            for event in events:
                handle.write(dumps(event, option=orjson.OPT_APPEND_NEWLINE))
        os.replace(tmp, output_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@click.command()
@click.argument("input_path", metavar="IN.jsonl", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(input_path: str, as_json: bool) -> None:
    """Summarise an AG-UI event log: types, runs, open entities, bad lines, compaction ratio."""
    stats = ReadStats()
    summary = LogSummary()
    with _open_input(input_path) as (stream, size), _progress(size, "reading") as tick:
        for _, event, size in read_records(stream, stats, tick):
            summary.add(event, size)
    report = summary.report(stats)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        summary.print_report(report, _stdout_console())


def _stdout_console() -> Any:
    from rich.console import Console

    return Console()
