"""Write a generated AG-UI thread log as JSONL, streaming (bounded memory at any size).

    python bench/make_log.py --events 36000 -o bench/data/thread-36k.jsonl
    python bench/make_log.py --events 360000 -o bench/data/thread-360k.jsonl --envelope --seed 2
    python bench/make_log.py --shape mixed -o /tmp/mixed.jsonl

Without --envelope each line is one bare event. With --envelope each line is a
stored record as the gateway's stores write them:
``{"seq": N, "runId": ..., "ts": ..., "source": "agent", "event": {...}}``
(seq dense from 1, runId of the run the event belongs to, ts in epoch ms).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from agui_testkit.generate import SHAPES, iter_log, realistic_coding_agent


def envelopes(events: Iterator[dict[str, Any]], start_ms: int = 1_760_000_000_000) -> Iterator[dict[str, Any]]:
    """Wrap events as stored records; ts follows event timestamps and never goes backwards."""
    run_id: str | None = None
    ts = start_ms
    for seq, event in enumerate(events, start=1):
        if event["type"] == "RUN_STARTED":
            run_id = event["runId"]
        stamp = event.get("timestamp")
        ts = max(ts, stamp) if isinstance(stamp, int) else ts + 1
        yield {"seq": seq, "runId": run_id, "ts": ts, "source": "agent", "event": event}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--events",
        type=int,
        default=36_000,
        help="about how many events (realistic coding-agent session); default 36000",
    )
    size.add_argument("--shape", choices=sorted(SHAPES), help="a named preset instead of --events")
    parser.add_argument("-o", "--output", required=True, type=Path, help="JSONL file to write ('-' for stdout)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--envelope", action="store_true", help="write stored-record lines instead of bare events")
    args = parser.parse_args(argv)

    shape = SHAPES[args.shape] if args.shape else realistic_coding_agent(args.events)
    records: Iterator[dict[str, Any]] = iter_log(shape, args.seed)
    if args.envelope:
        records = envelopes(records)

    started = time.perf_counter()
    count = written = 0
    if str(args.output) == "-":
        sink = sys.stdout.buffer
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        sink = open(args.output, "wb", buffering=1 << 20)  # noqa: SIM115 - closed below
    try:
        for record in records:
            line = orjson.dumps(record) + b"\n"
            sink.write(line)
            count += 1
            written += len(line)
    finally:
        if sink is not sys.stdout.buffer:
            sink.close()
    elapsed = time.perf_counter() - started
    print(f"wrote {count} events, {written / 1e6:.1f} MB to {args.output} in {elapsed:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
