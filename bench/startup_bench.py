"""Start-up and memory at scale on the file store (issue 16), against a baseline side by side.

For each thread count (``--threads``, default 1,000, 20,000 and 100,000 small finished
threads, each a run of a few events, written straight to disk with the store's own
line format and an empty open-run index, once per count and shared by both variants),
and for the baseline code (git ref ``--baseline``, default ``main``, extracted with
``git archive``) and this checkout:

  * start: seconds from the process start (``agui-gateway serve``) to the first
    ``/healthz`` 200, and resident memory (VmRSS) at that moment;
  * recovery: seconds from the process start until each of ``--open`` threads left
    open by a SIGKILL (logs ending in a RUN_STARTED, named by the open-run index as
    the store leaves them) has its RUN_ERROR stored, among ``--recover-among``
    finished threads;
  * reading: resident memory after ``GET /threads/{t}/snapshot`` of ``--read-threads``
    distinct threads once each (default: the largest count), against the same
    process fresh, with the memory after every ``--read-steps``-th part of the reads
    (flat once the caps are full when nothing grows per thread; a line when it does).

Every figure is printed for both variants with the ratio this/baseline. A baseline from
before issue 16 scans every thread before it listens (64 s at 20,000 threads): counts
above ``--baseline-max-threads`` (default 20,000), and reading more threads than that,
are measured on this checkout only (the baseline column shows ``skipped``). The machine
is shared: run it when nothing else does, and read the ratios rather than the seconds.

Time: writing 100,000 threads takes some 15-40 s; reading them 100,000 requests at a few
hundred a second (5-10 minutes on a loaded 2-core machine).

    python bench/startup_bench.py                                   # the full run (long)
    python bench/startup_bench.py --threads 200,500 --read-threads 300 --open 10 --recover-among 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agui_gateway.store.base import NewEvent  # noqa: E402
from agui_gateway.store.file.fs import LOG_NAME  # noqa: E402
from agui_gateway.store.file.run_index import write_index  # noqa: E402
from agui_gateway.store.records import encode_unsequenced, sequence_line  # noqa: E402

START_TIMEOUT_S = 1800.0  # the baseline scans every thread before it listens


# -- data -----------------------------------------------------------------------------------


def _finished_run(thread_id: str) -> list[NewEvent]:
    run, message = "r1", f"{thread_id}-m1"
    events = [
        {"type": "RUN_STARTED", "threadId": thread_id, "runId": run},
        {"type": "TEXT_MESSAGE_START", "messageId": message, "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": message, "delta": f"word{i} "} for i in range(6)),
        {"type": "TEXT_MESSAGE_END", "messageId": message},
        {"type": "RUN_FINISHED", "threadId": thread_id, "runId": run},
    ]
    return [NewEvent(event, run) for event in events]


def _open_run(thread_id: str) -> list[NewEvent]:
    """What a SIGKILL leaves of a run: its start and some events, no end."""
    return _finished_run(thread_id)[:-3]


def write_thread(threads_dir: Path, thread_id: str, events: list[NewEvent], ts: int) -> None:
    """One thread's log, exactly as the file store writes it."""
    folder = threads_dir / thread_id
    folder.mkdir()
    lines = [sequence_line(seq, encode_unsequenced(new, ts)) for seq, new in enumerate(events, 1)]
    (folder / LOG_NAME).write_bytes(b"".join(lines))


def make_data(data_dir: Path, finished: int, left_open: int = 0) -> list[str]:
    """``finished`` small finished threads and ``left_open`` threads cut off mid-run; returns
    the ids of the open ones."""
    threads_dir = data_dir / "threads"
    threads_dir.mkdir(parents=True)
    ts = time.time_ns() // 1_000_000
    for index in range(finished):
        thread_id = f"t{index:06d}"
        write_thread(threads_dir, thread_id, _finished_run(thread_id), ts)
    opened = [f"open{index:04d}" for index in range(left_open)]
    for thread_id in opened:
        write_thread(threads_dir, thread_id, _open_run(thread_id), ts)
    write_index(data_dir, opened, durable=False)  # as the store leaves it: the open runs named
    return opened


# -- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def extract_baseline(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "archive", ref, "agui_gateway"], cwd=ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Gateway:
    def __init__(self, src: Path, data_dir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agui_gateway", "serve", "--port", str(self.port), "--data", str(data_dir)],
            env={**os.environ, "PYTHONPATH": str(src)},
            cwd=src,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_healthy(self) -> float:
        """Seconds from the process start to the first /healthz 200."""
        with httpx.Client(timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {self.proc.returncode}")
                try:
                    if client.get(f"{self.base}/healthz").status_code == 200:
                        return time.perf_counter() - self.started
                except httpx.TransportError:
                    pass
                if time.perf_counter() - self.started > START_TIMEOUT_S:
                    raise RuntimeError("the gateway did not answer /healthz")
                time.sleep(0.01)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def gateway(src: Path, data_dir: Path) -> Iterator[Gateway]:
    gw = Gateway(src, data_dir)
    try:
        yield gw
    finally:
        gw.stop()


# -- figures ---------------------------------------------------------------------------------------


def measure_start(src: Path, data_dir: Path) -> tuple[float, float]:
    """Seconds to the first /healthz 200 and resident MiB then, on ``data_dir`` (left as it was)."""
    with gateway(src, data_dir) as gw:
        seconds = gw.wait_healthy()
        return seconds, rss_mib(gw.proc.pid)


def _closed(data_dir: Path, thread_id: str) -> bool:
    tail = (data_dir / "threads" / thread_id / LOG_NAME).read_bytes()[-4096:]
    return b'"RUN_ERROR"' in tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]


def measure_recovery(src: Path, work: Path, among: int, left_open: int) -> float:
    """Seconds from the process start until every cut-off run has its RUN_ERROR stored."""
    data_dir = work / "data"
    opened = make_data(data_dir, among, left_open)
    try:
        with gateway(src, data_dir) as gw:
            pending = set(opened)
            while pending:
                if gw.proc.poll() is not None:
                    raise RuntimeError(f"the gateway exited with {gw.proc.returncode}")
                pending = {t for t in pending if not _closed(data_dir, t)}
                if time.perf_counter() - gw.started > START_TIMEOUT_S:
                    raise RuntimeError(f"{len(pending)} runs still open")
                time.sleep(0.01)
            return time.perf_counter() - gw.started
    finally:
        shutil.rmtree(data_dir)


async def _read_all(base: str, thread_ids: list[str], concurrency: int = 8) -> None:
    queue = iter(thread_ids)
    async with httpx.AsyncClient(timeout=60) as client:

        async def worker() -> None:
            for thread_id in queue:
                response = await client.get(f"{base}/threads/{thread_id}/snapshot")
                response.raise_for_status()

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def measure_reading(src: Path, data_dir: Path, threads: int, steps: int) -> tuple[float, list[tuple[int, float]]]:
    """Resident MiB of a fresh process, and after each of ``steps`` parts of the reads
    (threads read so far, MiB)."""
    thread_ids = [f"t{index:06d}" for index in range(threads)]
    with gateway(src, data_dir) as gw:
        gw.wait_healthy()
        fresh = rss_mib(gw.proc.pid)
        after = []
        for step in range(1, steps + 1):
            done = threads * step // steps
            asyncio.run(_read_all(gw.base, thread_ids[threads * (step - 1) // steps : done]))
            after.append((done, rss_mib(gw.proc.pid)))
        return fresh, after


def ratio(now: float, base: float | None) -> str:
    return f"{now / base:.2f}x" if base else "-"


@contextmanager
def threads_on_disk(work: Path, threads: int) -> Iterator[Path]:
    data_dir = work / "data"
    made = time.perf_counter()
    make_data(data_dir, threads)
    print(f"  ({threads:,} threads written in {time.perf_counter() - made:.1f} s)", flush=True)
    try:
        yield data_dir
    finally:
        shutil.rmtree(data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1000,20000,100000", help="comma-separated thread counts")
    parser.add_argument("--open", type=int, default=100, help="threads left open by a SIGKILL, to recover")
    parser.add_argument("--recover-among", type=int, default=1000, help="finished threads beside them")
    parser.add_argument("--read-threads", type=int, default=None, help="distinct threads read (default: the largest)")
    parser.add_argument("--read-steps", type=int, default=5, help="memory printed after each such part of the reads")
    parser.add_argument("--baseline", default="main", help="git ref of the baseline code")
    parser.add_argument(
        "--baseline-max-threads",
        type=int,
        default=20_000,
        help="larger counts (and reads) are measured on this checkout only",
    )
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.threads.split(",") if c.strip()]
    read_threads = args.read_threads if args.read_threads is not None else max(counts)

    with tempfile.TemporaryDirectory(prefix="startup-bench-") as tmp:
        work = Path(tmp)
        variants = {"baseline": extract_baseline(args.baseline, work / "baseline"), "this": ROOT}
        print(f"baseline: {args.baseline} (up to {args.baseline_max_threads:,} threads); this: {ROOT}")
        print(f"{'figure':<44} {'baseline':>12} {'this':>12} {'this/base':>10}")

        def row(label: str, base: float | None, now: float, unit: str) -> None:
            shown = f"{base:>10.2f}{unit:>2}" if base is not None else f"{'skipped':>12}"
            print(f"{label:<44} {shown} {now:>10.2f}{unit:>2} {ratio(now, base):>10}", flush=True)

        def measured(threads: int) -> dict[str, Path]:
            if threads > args.baseline_max_threads:
                return {"this": ROOT}
            return variants

        reading: dict[str, tuple[float, list[tuple[int, float]]]] = {}

        def read_on(data_dir: Path) -> None:
            for name, src in measured(read_threads).items():
                reading[name] = measure_reading(src, data_dir, read_threads, max(1, args.read_steps))

        for count in counts:
            with threads_on_disk(work, count) as data_dir:
                results = {name: measure_start(src, data_dir) for name, src in measured(count).items()}
                if count == read_threads:  # the same threads serve the reading figure
                    read_on(data_dir)
            base = results.get("baseline")
            row(f"{count:,} threads: start to /healthz 200", base[0] if base else None, results["this"][0], "s")
            row(f"{count:,} threads: resident after start", base[1] if base else None, results["this"][1], "Mi")
        recovery = {name: measure_recovery(src, work, args.recover_among, args.open) for name, src in variants.items()}
        row(
            f"recover {args.open} runs cut off (among {args.recover_among:,})",
            recovery["baseline"],
            recovery["this"],
            "s",
        )
        if not reading:
            with threads_on_disk(work, read_threads) as data_dir:
                read_on(data_dir)
        for name, (fresh, after) in reading.items():
            steps = ", ".join(f"{done:,}: +{mib - fresh:.1f}" for done, mib in after)
            print(f"  {name}: fresh {fresh:.1f} MiB; added after reading ({steps}) MiB")
        added = {name: after[-1][1] - fresh for name, (fresh, after) in reading.items()}
        row(f"read {read_threads:,} threads once: resident added", added.get("baseline"), added["this"], "Mi")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
