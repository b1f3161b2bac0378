"""Benchmark of the foundation (issue 2): compaction speed, memory and size.

Everything is measured side by side in this one run, as ratios against a
baseline measured in the same script (the machine is shared and noisy, so
absolute times drift): repetitions are interleaved and the minimum and median
are reported.

    python bench/compact_bench.py                 # 36,000 and 360,000 events
    python bench/compact_bench.py --sizes 36000   # just the smaller log
    python bench/compact_bench.py --repeat 9

Figures (issue 2):
  whole process  `agui-gateway compact` vs a Node process running the official compactEvents
  in process     compact_to_snapshots vs merely parsing the file with orjson (the parse floor)
  memory         peak RSS of `agui-gateway compact` vs the snapshot's size
  size           snapshot output vs the JSON of the final messages and state, and vs the raw log
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
CLI = [sys.executable, "-m", "agui_gateway.cli.main"]


def ensure_log(events: int, seed: int = 1) -> Path:
    path = DATA / f"thread-{events // 1000}k-s{seed}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "make_log.py"),
                "--events",
                str(events),
                "--seed",
                str(seed),
                "-o",
                str(path),
            ],
            check=True,
        )
    return path


# A child's peak RSS (ru_maxrss) keeps the high-water mark of the process it was
# forked or spawned from until exec, so a child spawned from this benchmark (which
# holds whole logs in memory) would report our memory, not its own. Launch through
# a tiny process instead: GNU time if present, else a bare Python launcher (which
# adds its own ~8 MiB to the figure).
_LAUNCHER = """
import os, sys
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"maxrss_kib={usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one child process."""
    if os.path.exists("/usr/bin/time"):
        wrapped = ["/usr/bin/time", "-f", "maxrss_kib=%M", *cmd]
    else:
        wrapped = [sys.executable, "-S", "-c", _LAUNCHER, *cmd]
    start = time.perf_counter()
    proc = subprocess.run(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    err = proc.stderr.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    kib = int(err.rsplit("maxrss_kib=", 1)[1].split()[0])
    return elapsed, kib * 1024


def interleave(funcs: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeat):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return times


def fmt(seconds: list[float]) -> str:
    return f"min {1000 * min(seconds):8.1f} ms  median {1000 * statistics.median(seconds):8.1f} ms"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{min(a) / min(b):.2f}x (median {statistics.median(a) / statistics.median(b):.2f}x)"


def bench_whole_process(log: Path, repeat: int) -> None:
    out = DATA / "out.jsonl"
    commands = {
        "agui-gateway compact": [*CLI, "compact", str(log), "-o", str(out)],
        "node official compactEvents": ["node", str(ROOT / "harness" / "compact.mjs"), str(log), "-o", str(out)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    peak: dict[str, int] = dict.fromkeys(commands, 0)
    for _ in range(repeat):
        for name, cmd in commands.items():
            elapsed, rss = run_measured(cmd)
            times[name].append(elapsed)
            peak[name] = max(peak[name], rss)
    for name in commands:
        print(f"  {name:30s} {fmt(times[name])}  peak RSS {peak[name] / 2**20:7.1f} MiB")
    ours, node = times["agui-gateway compact"], times["node official compactEvents"]
    print(f"  ratio agui-gateway / node: {ratio(ours, node)}   (must be < 1)")


def bench_in_process(log: Path, repeat: int) -> None:
    from agui_gateway.cli.logs import read_events
    from agui_gateway.protocol.compaction import compact_to_snapshots

    data = log.read_bytes()
    events = [orjson.loads(line) for line in data.splitlines()]
    funcs = {
        "parse floor (orjson, per line)": lambda: [orjson.loads(line) for line in io.BytesIO(data)],
        "compact_to_snapshots(events)": lambda: compact_to_snapshots(events),
        "read + compact_to_snapshots": lambda: compact_to_snapshots(read_events(io.BytesIO(data))),
    }
    times = interleave(funcs, repeat)
    for name, seconds in times.items():
        print(f"  {name:34s} {fmt(seconds)}")
    floor = times["parse floor (orjson, per line)"]
    print(
        f"  compact_to_snapshots / parse floor: {ratio(times['compact_to_snapshots(events)'], floor)}"
        "   (must be <= 1.5)"
    )
    print(f"  read+compact / parse floor:         {ratio(times['read + compact_to_snapshots'], floor)}")


def bench_size_and_memory(log: Path) -> None:
    from agui_gateway.cli.logs import read_events
    from agui_gateway.protocol.compaction import SnapshotCompactor

    compactor = SnapshotCompactor()
    with log.open("rb") as handle:
        for event in read_events(handle):
            compactor.feed(event)
    replay = compactor.replay_events()
    out_bytes = sum(len(orjson.dumps(e)) + 1 for e in replay)
    messages, state = compactor.snapshot()
    floor = len(orjson.dumps({"messages": messages, "state": state}))
    raw = log.stat().st_size
    print(
        f"  raw log {raw:,} B; snapshot output {out_bytes:,} B ({len(replay)} events); "
        f"final messages+state JSON {floor:,} B"
    )
    print(
        f"  size: output / floor = {out_bytes / floor:.3f}x (must be <= 1.2);"
        f" output / raw = {out_bytes / raw:.3f} (must be <= 1)"
    )
    _, rss = run_measured([*CLI, "compact", str(log), "-o", str(DATA / "out.jsonl")])
    limit = 4 * out_bytes + 40 * 2**20
    print(
        f"  memory: peak RSS of `agui-gateway compact` {rss / 2**20:.1f} MiB;"
        f" limit 4 x snapshot + 40 MiB = {limit / 2**20:.1f} MiB -> "
        f"{'OK' if rss < limit else 'OVER'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[36_000, 360_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for size in args.sizes:
        log = ensure_log(size)
        lines = sum(1 for _ in log.open("rb"))
        print(f"\n== {log.name}: {lines:,} events, {log.stat().st_size / 2**20:.1f} MiB ==")
        print("whole process:")
        bench_whole_process(log, args.repeat if size < 100_000 else max(2, args.repeat // 2))
        print("in process:")
        bench_in_process(log, args.repeat)
        print("size and memory:")
        bench_size_and_memory(log)


if __name__ == "__main__":
    main()
