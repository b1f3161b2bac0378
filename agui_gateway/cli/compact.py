"""``agui-gateway compact`` and ``agui-gateway inspect``: offline tools for thread logs."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import click
import orjson

from agui_gateway.cli.logs import ByteReader, ReadStats, read_events, read_records
from agui_gateway.cli.summary import LogSummary

_PROGRESS_MIN_BYTES = 8 << 20


class _Tee:
    """A stream that keeps a copy of what is read from it (stdin can only be read once)."""

    def __init__(self, stream: IO[bytes], copy: IO[bytes]) -> None:
        self._stream = stream
        self._copy = copy

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._copy.write(data)
        return data


@contextlib.contextmanager
def _open_input(path: str) -> Iterator[tuple[ByteReader, int | None, Callable[[], ByteReader]]]:
    """The input stream, its size if known, and a way to read it again from the start."""
    if path == "-":
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as copy:

            def again() -> ByteReader:
                copy.seek(0)
                return copy

            yield _Tee(sys.stdin.buffer, copy), None, again
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise click.FileError(path, hint=exc.strerror) from exc
    with handle:

        def reopen() -> ByteReader:
            handle.seek(0)
            return handle

        yield handle, os.fstat(handle.fileno()).st_size, reopen


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
        click.echo(f"warning: skipped {stats.bad_lines} bad line(s) (line {shown}{more})", err=True)


@click.command()
@click.argument("input_path", metavar="IN.jsonl", type=str)
@click.option(
    "-o", "--output", "output_path", default="-", show_default=True, help="Output JSONL file ('-' for stdout)."
)
@click.option(
    "--mode",
    type=click.Choice(["snapshots", "deltas"]),
    default="snapshots",
    show_default=True,
    help="snapshots: finished runs folded into one snapshot run; "
    "deltas: only concatenate streamed deltas, order preserved.",
)
def compact(input_path: str, output_path: str, mode: str) -> None:
    """Compact an AG-UI event log (IN.jsonl, '-' for stdin) for replay."""
    stats = ReadStats()
    with _open_input(input_path) as (stream, size, again), _progress(size, "compacting") as tick:
        lines = compact_lines(stream, mode, stats, tick)
        if mode == "snapshots" and sum(map(len, lines)) > stats.bytes:
            # The snapshot form has a fixed cost (its own RUN_STARTED and snapshot
            # wrappers), and JSON-patch copies can make state outgrow its deltas:
            # on such a log the delta form, which is never larger, is the smaller replay.
            click.echo("note: the snapshot form is larger than this log; writing the delta form", err=True)
            lines = compact_lines(again(), "deltas", ReadStats(), None)
    _write_lines(lines, output_path)
    _report_bad_lines(stats)


def compact_lines(stream: ByteReader, mode: str, stats: ReadStats, tick: Callable[[int], None] | None) -> list[bytes]:
    """The compacted log as encoded JSON lines."""
    from agui_gateway.protocol.compaction import DeltaCompactor, SnapshotCompactor

    compactor = SnapshotCompactor() if mode == "snapshots" else DeltaCompactor()
    compactor.feed_all(read_events(stream, stats, tick))
    events = compactor.replay_events() if isinstance(compactor, SnapshotCompactor) else compactor.events()
    return [orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in events]


def _write_lines(lines: list[bytes], output_path: str) -> None:
    """Write the lines; a file is replaced atomically, never left half-written."""
    if output_path == "-":
        sys.stdout.buffer.writelines(lines)
        sys.stdout.buffer.flush()
        return
    tmp = f"{output_path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as handle:
            handle.writelines(lines)
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
    with _open_input(input_path) as (stream, size, _), _progress(size, "reading") as tick:
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
