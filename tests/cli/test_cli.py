"""The ``agui-gateway compact`` and ``inspect`` commands, run as real processes."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.official_client import assert_same_end

from agui_testkit.generate import generate_log

CLI = [sys.executable, "-m", "agui_gateway"]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, timeout=120, check=False)


def write_log(path: Path, events: list[dict[str, Any]], bad_lines: dict[int, bytes] | None = None) -> Path:
    lines = [orjson.dumps(e) for e in events]
    for index, line in sorted((bad_lines or {}).items(), reverse=True):
        lines.insert(index, line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def read_jsonl(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def then_an_interrupt(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``raw`` up to its last finished run, then a run that ends asking for approval and
    one that fails: the client keeps the interrupt pending through the RUN_ERROR."""
    last = max(i for i, e in enumerate(raw) if e["type"] in ("RUN_FINISHED", "RUN_ERROR"))
    thread = raw[0]["threadId"]
    interrupt = {"id": "approve-1", "reason": "tool_approval", "message": "Delete the file?"}
    return [
        *raw[: last + 1],
        {"type": "RUN_STARTED", "threadId": thread, "runId": "ask"},
        {"type": "TEXT_MESSAGE_START", "messageId": "ask-m", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "ask-m", "delta": "May I delete it?"},
        {"type": "TEXT_MESSAGE_END", "messageId": "ask-m"},
        {
            "type": "RUN_FINISHED",
            "threadId": thread,
            "runId": "ask",
            "outcome": {"type": "interrupt", "interrupts": [interrupt]},
        },
        {"type": "RUN_STARTED", "threadId": thread, "runId": "late"},
        {"type": "RUN_ERROR", "message": "the model is away", "code": "upstream"},
    ]


@pytest.mark.parametrize("mode", ["snapshots", "deltas"])
def test_compact_file_replays_like_the_raw_log(tmp_path: Path, official_client: Any, mode: str) -> None:
    raw = then_an_interrupt(generate_log("mixed", 4))
    source = write_log(tmp_path / "in.jsonl", raw)
    out = tmp_path / "out.jsonl"
    result = run_cli("compact", str(source), "-o", str(out), "--mode", mode)
    assert result.returncode == 0, result.stderr.decode()
    compacted = read_jsonl(out.read_bytes())
    assert len(compacted) < len(raw)
    assert out.stat().st_size < source.stat().st_size
    reference = official_client.replay(raw)
    assert reference.pending_interrupts, "the log ends on an interrupt: the comparison covers it"
    assert_same_end(f"compact --mode {mode}", official_client.replay(compacted), reference)


def test_compact_stdin_to_stdout_skips_and_counts_bad_lines(official_client: Any) -> None:
    raw = generate_log("tiny", 2)
    lines = [orjson.dumps(e) for e in raw]
    torn = [*lines[:3], b"not json at all", b'{"type": "TEXT_MESS', *lines[3:], b"[1, 2]"]
    result = run_cli("compact", "-", stdin=b"\n".join(torn) + b"\n")
    assert result.returncode == 0, result.stderr.decode()
    assert b"skipped 3 bad line(s)" in result.stderr
    assert b"line 4, 5" in result.stderr
    assert_same_end("compact - (stdin)", official_client.replay(read_jsonl(result.stdout)), official_client.replay(raw))


def test_compact_reads_stored_records(tmp_path: Path, official_client: Any) -> None:
    raw = generate_log("error_runs", 3)
    records = [{"seq": n, "runId": None, "ts": 1, "source": "agent", "event": e} for n, e in enumerate(raw, 1)]
    source = write_log(tmp_path / "log.jsonl", records)
    result = run_cli("compact", str(source))
    assert result.returncode == 0, result.stderr.decode()
    assert_same_end(
        "compact of stored records", official_client.replay(read_jsonl(result.stdout)), official_client.replay(raw)
    )


def test_compact_never_writes_more_than_it_read() -> None:
    """A tiny log whose snapshot form would be larger falls back to the delta form."""
    raw = [
        {"type": "RUN_STARTED", "threadId": "t", "runId": "r"},
        {"type": "ACTIVITY_SNAPSHOT", "messageId": "a", "activityType": "PLAN", "content": {}},
        {"type": "RUN_FINISHED", "threadId": "t", "runId": "r"},
    ]
    data = b"".join(orjson.dumps(e) + b"\n" for e in raw)
    result = run_cli("compact", "-", stdin=data)
    assert result.returncode == 0
    assert len(result.stdout) <= len(data)
    assert read_jsonl(result.stdout) == raw


def test_compact_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("compact", str(tmp_path / "nope.jsonl"))
    assert result.returncode != 0
    assert b"nope.jsonl" in result.stderr
    assert b"Traceback" not in result.stderr


def test_inspect_reports_types_runs_open_entities_and_ratio(tmp_path: Path) -> None:
    raw = generate_log("open_last_run", 5)
    source = write_log(tmp_path / "in.jsonl", raw, bad_lines={2: b"garbage"})
    result = run_cli("inspect", str(source), "--json")
    assert result.returncode == 0, result.stderr.decode()
    report = orjson.loads(result.stdout)
    assert report["events"] == len(raw)
    assert report["badLines"] == 1
    assert sum(row["events"] for row in report["types"].values()) == len(raw)
    by_type: dict[str, int] = {}
    for event in raw:
        by_type[event["type"]] = by_type.get(event["type"], 0) + 1
    assert {k: v["events"] for k, v in report["types"].items()} == by_type
    runs = report["runs"]
    assert len(runs) == by_type["RUN_STARTED"]
    assert runs[-1]["outcome"] == "open"
    open_ids = {e["messageId"] for e in raw if e["type"] == "TEXT_MESSAGE_START"} - {
        e["messageId"] for e in raw if e["type"] == "TEXT_MESSAGE_END"
    }
    assert set(report["openMessages"]) >= open_ids and open_ids
    assert 0 < report["compaction"]["snapshotRatio"] < 1


def test_inspect_human_output_names_the_essentials(tmp_path: Path) -> None:
    source = write_log(tmp_path / "in.jsonl", generate_log("error_runs", 1))
    result = run_cli("inspect", str(source))
    assert result.returncode == 0, result.stderr.decode()
    text = result.stdout.decode()
    for needle in ("events", "TEXT_MESSAGE_CONTENT", "runs:", "error", "compaction:"):
        assert needle in text


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_progress_bar_on_a_terminal_only_for_large_files(tmp_path: Path) -> None:
    from agui_testkit.generate import iter_log
    from agui_testkit.shapes import realistic_coding_agent

    source = tmp_path / "big.jsonl"
    with source.open("wb") as handle:
        for event in iter_log(realistic_coding_agent(100_000), 1):
            handle.write(orjson.dumps(event) + b"\n")
    assert source.stat().st_size > 8 << 20
    command = " ".join(
        [*map(shlex.quote, CLI), "compact", shlex.quote(str(source)), "-o", shlex.quote(str(tmp_path / "out.jsonl"))]
    )
    on_tty = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, timeout=120, check=False)
    assert on_tty.returncode == 0, on_tty.stdout.decode(errors="replace")
    assert b"compacting" in on_tty.stdout
    piped = run_cli("compact", str(source), "-o", str(tmp_path / "out2.jsonl"))
    assert b"compacting" not in piped.stderr
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "out2.jsonl").read_bytes()
