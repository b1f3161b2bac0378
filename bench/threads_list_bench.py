"""Benchmark of ``GET /threads`` (issue 11): the first call over 5,000 threads.

Fills a file-store data directory with N small threads (each a short finished
run), then for each variant starts a fresh gateway process (`agui-gateway serve`
on loopback) over that directory and times its *first* ``GET /threads`` call,
the one that has to look at every thread on disk:

  * baseline: the code at git ref ``--baseline``, extracted with ``git archive`` and
    run side by side, unpaginated (all threads). By default the last commit before
    the pagination change (514017e, the parent of issue 11's 23d734b), so the ratio
    is the change's; a baseline whose package is this checkout's own is refused;
  * this checkout, unpaginated (the same response as before);
  * this checkout, one page: ``?limit=50`` (sorted by last activity, newest first).

    python bench/threads_list_bench.py                    # 5,000 threads
    python bench/threads_list_bench.py --threads 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The last commit before paginated GET /threads (issue 11, commit 23d734b): the list as it was.
PRE_PAGINATION = "514017e0f0b9e0994f4a8830aceea484c51e50a2"


def _run_events(thread: str, index: int) -> list[dict[str, object]]:
    run, msg = f"r-{index}", f"m-{index}"
    return [
        {"type": "RUN_STARTED", "threadId": thread, "runId": run},
        {"type": "TEXT_MESSAGE_START", "messageId": msg, "role": "assistant"},
        *({"type": "TEXT_MESSAGE_CONTENT", "messageId": msg, "delta": f"word{i} "} for i in range(20)),
        {"type": "TEXT_MESSAGE_END", "messageId": msg},
        {"type": "RUN_FINISHED", "threadId": thread, "runId": run},
    ]


async def fill(data_dir: Path, count: int) -> None:
    from agui_gateway.store import NewEvent
    from agui_gateway.store.file import FileStore

    store = FileStore(data_dir, fsync="never")
    await store.open()
    for index in range(count):
        thread = f"thread-{index:05d}"
        await store.append(thread, [NewEvent(e, f"r-{index}") for e in _run_events(thread, index)])
    await store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def same_package(ref: str) -> bool:
    """Whether ``agui_gateway`` at ``ref`` is exactly this checkout's (committed, no local changes)."""
    if _git("status", "--porcelain", "--", "agui_gateway"):
        return False  # local changes: this checkout differs from every commit
    return _git("rev-parse", f"{ref}:agui_gateway") == _git("rev-parse", "HEAD:agui_gateway")


def extract_baseline(ref: str, into: Path) -> Path:
    """The ``agui_gateway`` package as of ``ref``, importable from the returned directory."""
    archive = subprocess.run(["git", "archive", ref, "agui_gateway"], cwd=ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def first_call(src: Path, data_dir: Path, query: str) -> tuple[float, int]:
    """Seconds of the first ``GET /threads{query}`` of a fresh gateway, and threads returned."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agui_gateway", "serve", "--port", str(port), "--data", str(data_dir)],
        env=env,
        cwd=src,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=60) as client:
            while True:
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway did not start")
                time.sleep(0.05)
            started = time.perf_counter()
            response = client.get(f"{base}/threads{query}")
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            return elapsed, len(response.json()["threads"])
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per variant (the median is reported)")
    parser.add_argument(
        "--baseline",
        default=PRE_PAGINATION,
        help="git ref of the baseline code (default: the last commit before the pagination change)",
    )
    args = parser.parse_args(argv)
    try:
        identical = same_package(args.baseline)
    except subprocess.CalledProcessError as exc:
        print(f"cannot read the baseline {args.baseline!r} from git: {exc.stderr.strip()}", file=sys.stderr)
        return 2
    if identical:
        print(
            f"the baseline {args.baseline!r} has this checkout's own agui_gateway: comparing a tree with "
            "itself measures nothing; pick another --baseline",
            file=sys.stderr,
        )
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="threads-bench-"))
    try:
        data_dir = tmp / "data"
        started = time.perf_counter()
        asyncio.run(fill(data_dir, args.threads))
        print(f"{args.threads} threads written in {time.perf_counter() - started:.1f} s")
        baseline = extract_baseline(args.baseline, tmp / "baseline")
        variants = [
            (f"baseline ({args.baseline}), all threads", baseline, ""),
            ("this checkout, all threads", ROOT, ""),
            ("this checkout, ?limit=50", ROOT, "?limit=50"),
        ]
        results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for _ in range(args.rounds):  # interleaved, so machine noise hits every variant alike
            for name, src, query in variants:
                elapsed, returned = first_call(src, data_dir, query)
                results[name].append(elapsed)
                print(f"  {name}: {elapsed:.3f} s ({returned} threads)")
        base = statistics.median(results[variants[0][0]])
        print(f"median of {args.rounds} fresh processes each")
        for name, _, _ in variants:
            median = statistics.median(results[name])
            print(f"{name:40s} {median:.3f} s  {median / base:.2f}x baseline")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
