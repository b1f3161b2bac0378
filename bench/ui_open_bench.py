"""/ui opening a long thread: time to the first rendered message, latest turns against the whole history.

    python bench/ui_open_bench.py                # the ~100 MB thread and the 36,000-event thread
    python bench/ui_open_bench.py --scale 0.05   # a quick run on small threads

The threads are those of ``bench/history_window_bench.py`` (a coding-agent session with
large tool results, and the 36,000-event session), stored in a file store. For each, a
fresh ``agui-gateway serve`` process per measurement (what a user opening a thread after a
deploy meets: the replay state is built from the checkpoint), and Debian's chromium
driven by Playwright opens ``/ui/#/threads/{t}`` (the page asks for its latest 10 turns)
and, side by side, ``/ui/#/threads/{t}?turns=all`` (the whole history at once, what the
page did before history windows). Printed: the median time from navigation to the first
message in the page's DOM, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import history_window_bench as windows  # the bench folder is not a package

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
FIRST_MESSAGE = "#messages [data-message-id]"
TIMEOUT_MS = 300_000


def open_time(browser: object, url: str) -> float:
    """Seconds from navigation to the first rendered message, in a new page."""
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(FIRST_MESSAGE, timeout=TIMEOUT_MS)
        return time.perf_counter() - started
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="thread size factor (default 1: ~100 MB, 36,000)")
    parser.add_argument("--mb", type=float, default=100.0, help="MB of the large-results thread at scale 1")
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per figure (median)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stored: list[tuple[str, Path]] = []
        for n, (name, raw) in enumerate(windows.threads(args.scale, args.mb)):
            data = Path(tmp) / f"data-{n}"
            asyncio.run(windows.store_thread(data, raw))  # before Playwright's loop starts
            stored.append((name, data))
        print(f"{'thread':<28}{'latest 10 turns':>18}{'whole history':>16}{'ratio':>9}")
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for name, data in stored:
                    times: dict[str, list[float]] = {"window": [], "whole": []}
                    for _ in range(args.repeat):
                        for mode, suffix in (("window", ""), ("whole", "?turns=all")):
                            with windows.gateway(data) as url:
                                times[mode].append(open_time(browser, f"{url}/ui/#/threads/{windows.THREAD}{suffix}"))
                    window = statistics.median(times["window"])
                    whole = statistics.median(times["whole"])
                    print(f"{name:<28}{window * 1000:>16.0f}ms{whole * 1000:>14.0f}ms{window / whole:>9.2f}")
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
