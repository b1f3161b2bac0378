"""What ``agui-gateway inspect`` reports about a log, computed in one streaming pass."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from agui_gateway.cli.logs import ReadStats
from agui_gateway.protocol import events as ev
from agui_gateway.protocol.compaction import DeltaCompactor, SnapshotCompactor
from agui_gateway.protocol.types import Event


@dataclass
class RunSummary:
    run_id: str
    events: int = 0
    outcome: str = "open"  # finished | error | open
    error: str | None = None


@dataclass
class LogSummary:
    counts: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    runs: list[RunSummary] = field(default_factory=list)
    open_messages: dict[str, str] = field(default_factory=dict)  # id -> kind
    open_tool_calls: dict[str, str] = field(default_factory=dict)  # id -> name
    snapshots: SnapshotCompactor = field(default_factory=SnapshotCompactor)
    deltas: DeltaCompactor = field(default_factory=DeltaCompactor)

    def add(self, event: Event, size: int) -> None:
        kind = event["type"]
        self.counts[kind] += 1
        self.sizes[kind] += size
        self.snapshots.feed(event)
        self.deltas.feed(event)
        if kind == ev.RUN_STARTED:
            self.runs.append(RunSummary(str(event.get("runId", ""))))
        if self.runs:
            self.runs[-1].events += 1
        self._track_open(kind, event)

    def _track_open(self, kind: str, event: Event) -> None:
        if kind in (ev.TEXT_MESSAGE_START, ev.REASONING_MESSAGE_START):
            self.open_messages[str(event.get("messageId"))] = kind.split("_MESSAGE")[0].lower()
        elif kind in (ev.TEXT_MESSAGE_END, ev.REASONING_MESSAGE_END):
            self.open_messages.pop(str(event.get("messageId")), None)
        elif kind == ev.TOOL_CALL_START:
            self.open_tool_calls[str(event.get("toolCallId"))] = str(event.get("toolCallName"))
        elif kind == ev.TOOL_CALL_END:
            self.open_tool_calls.pop(str(event.get("toolCallId")), None)
        elif kind in ev.TERMINAL_TYPES and self.runs:
            run = self.runs[-1]
            run.outcome = "finished" if kind == ev.RUN_FINISHED else "error"
            if kind == ev.RUN_ERROR:
                run.error = str(event.get("message", ""))

    def report(self, stats: ReadStats) -> dict[str, Any]:
        snapshot_bytes = sum(len(orjson.dumps(e)) + 1 for e in self.snapshots.replay_events())
        delta_bytes = sum(len(orjson.dumps(e)) + 1 for e in self.deltas.events())
        messages, state = self.snapshots.snapshot()
        floor = len(orjson.dumps({"messages": messages, "state": state}))
        raw = stats.bytes or 1
        return {
            "events": stats.events,
            "bytes": stats.bytes,
            "badLines": stats.bad_lines,
            "badLineNumbers": stats.bad_line_numbers,
            "types": {
                kind: {"events": self.counts[kind], "bytes": self.sizes[kind]}
                for kind in sorted(self.counts, key=lambda k: -self.sizes[k])
            },
            "runs": [
                {"runId": r.run_id, "events": r.events, "outcome": r.outcome, "error": r.error} for r in self.runs
            ],
            "openMessages": sorted(self.open_messages),
            "openToolCalls": sorted(self.open_tool_calls),
            "messages": len(messages),
            "compaction": {
                "snapshotBytes": snapshot_bytes,
                "snapshotRatio": round(snapshot_bytes / raw, 4),
                "deltaBytes": delta_bytes,
                "deltaRatio": round(delta_bytes / raw, 4),
                "floorBytes": floor,
                "snapshotOverFloor": round(snapshot_bytes / max(floor, 1), 4),
            },
        }

    @staticmethod
    def print_report(report: dict[str, Any], console: Any) -> None:
        from rich.table import Table

        console.print(
            f"[bold]{report['events']:,}[/] events, {report['bytes']:,} bytes, {report['badLines']} bad line(s)"
        )
        types = Table("type", "events", "bytes", title="Events by type")
        for kind, row in report["types"].items():
            types.add_row(kind, f"{row['events']:,}", f"{row['bytes']:,}")
        console.print(types)
        runs = report["runs"]
        outcomes = Counter(r["outcome"] for r in runs)
        console.print(
            f"runs: {len(runs)} ({outcomes['finished']} finished, {outcomes['error']} error, {outcomes['open']} open)"
        )
        for run in runs:
            if run["outcome"] != "finished":
                detail = f": {run['error']}" if run["error"] else ""
                console.print(f"  {run['runId']}: {run['outcome']}{detail}")
        if report["openMessages"] or report["openToolCalls"]:
            console.print(f"open messages: {', '.join(report['openMessages']) or '-'}")
            console.print(f"open tool calls: {', '.join(report['openToolCalls']) or '-'}")
        c = report["compaction"]
        console.print(
            f"compaction: snapshots {c['snapshotBytes']:,} bytes ({c['snapshotRatio']:.2%} of raw, "
            f"{c['snapshotOverFloor']:.2f}x the final messages+state), "
            f"deltas {c['deltaBytes']:,} bytes ({c['deltaRatio']:.2%} of raw)"
        )
