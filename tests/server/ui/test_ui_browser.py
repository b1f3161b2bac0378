"""The /ui page in a real headless Chromium (Debian's package, driven by Playwright).

Each test runs the real gateway on loopback with its demo agent (paced so a run
lasts a few seconds: long enough to reload, go offline or open a second tab in
the middle of it). What the page shows is checked against the gateway's own
snapshot of the thread (``GET /threads/{t}/snapshot``), which the official client
equivalence tests pin to the raw log. Screenshots go to ``tmp/artifacts/``
(``AGUI_ARTIFACTS`` overrides), one of each kind is in docs/img/ for the README.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from support.clock import next_millisecond
from support.events import run_input, user_message
from support.official_client import OfficialClient
from support.servers import REPO_ROOT, RunningGateway, serve_gateway
from support.sse import SseReader, collect, events_of
from support.waiting import wait_until

from agui_gateway.server.config import GatewayConfig, parse_tokens
from agui_gateway.store import NewEvent
from agui_gateway.store.file import FileStore
from agui_testkit.generate import iter_log
from agui_testkit.shapes import LogShape, realistic_coding_agent

T = TypeVar("T")

CHROMIUM = "/usr/bin/chromium"  # Debian's chromium package; scripts/test.sh installs it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_PACE = 2.5  # a demo run takes about 7 s
WAIT_MS = 20_000
VIEWPORT = {"width": 1280, "height": 860}
ARTIFACTS = Path(os.environ.get("AGUI_ARTIFACTS", REPO_ROOT / "tmp" / "artifacts"))

# What the page shows, read from the DOM: every rendered message (id, role, text) in order.
CONVERSATION_JS = """() => [...document.querySelectorAll('#messages [data-message-id]')].map(n => ({
    id: n.dataset.messageId, role: n.dataset.role,
    text: n.querySelector(':scope > .text, :scope > details > .text')?.textContent ?? ''}))"""
ASSISTANT_TEXT_JS = (
    "() => [...document.querySelectorAll('.message.assistant > .text')].map(n => n.textContent).join('')"
)
BADGE_IS = "(status) => document.querySelector('#run-badge').classList.contains(status)"


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium package")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


@pytest.fixture
def demo_gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=DEMO_PACE, fsync="never")
    with serve_gateway(config) as gw:
        yield gw


def watch_errors(page: Page) -> list[str]:
    """Uncaught page errors, collected: a test ends by asserting there were none."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def snapshot(gw: RunningGateway, thread: str) -> dict[str, Any]:
    response = httpx.get(f"{gw.url}/threads/{thread}/snapshot", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def expected_conversation(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The gateway's messages as the page renders them: tool results sit beside their call."""
    calls = {c["id"] for m in messages if m["role"] == "assistant" for c in m.get("toolCalls") or []}
    out = []
    for m in messages:
        if m["role"] == "tool" and m.get("toolCallId") in calls:
            continue
        content = m.get("content")
        text = content if isinstance(content, str) else ""
        out.append({"id": m["id"], "role": m["role"], "text": text if m["role"] != "activity" else ""})
    return out


def start_demo_run(page: Page, thread: str, text: str) -> None:
    page.fill("#new-thread-id", thread)
    page.fill("#new-message", text)
    page.click("#new-run button[type=submit]")
    page.wait_for_url(f"**/ui/#/threads/{thread}")


def wait_mid_run_text(page: Page) -> str:
    """Waits for some assistant text while the run is still open; returns that text."""
    page.wait_for_function(
        f"() => ({ASSISTANT_TEXT_JS})().length > 0 && ({BADGE_IS})('open')",
        polling="raf",
    )
    text: str = page.evaluate(ASSISTANT_TEXT_JS)
    return text


def wait_finished(page: Page) -> None:
    page.wait_for_function(f"() => ({BADGE_IS})('finished')")


def assert_shows_snapshot(page: Page, gw: RunningGateway, thread: str) -> None:
    """The page's conversation is the gateway's, each message once; so is its client's state."""
    assert page.is_hidden("#thread-error"), page.text_content("#thread-error")  # the client pipeline is fine
    shown = page.evaluate(CONVERSATION_JS)
    ids = [m["id"] for m in shown]
    assert len(ids) == len(set(ids)), f"a message is shown twice: {ids}"
    expected = snapshot(gw, thread)
    assert shown == expected_conversation(expected["messages"])
    held = page.evaluate("() => ({messages: window.aguiUi.view.agent.messages, state: window.aguiUi.view.agent.state})")
    assert held == {"messages": expected["messages"], "state": expected["state"]}


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine to the end in a thread of its own (Playwright's sync API owns this one's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def test_a_demo_run_streams_in_and_a_second_tab_and_the_list_see_it_live(
    tmp_path: Path, context: BrowserContext
) -> None:
    data_dir = tmp_path / "data"
    for thread, shape in (("coding-session-7", "realistic_small"), ("triage-42", "mixed"), ("hello", "tiny")):
        run_async(_store_generated_thread(data_dir, thread, shape))  # older threads, for the list
    config = GatewayConfig(data_dir=data_dir, demo=True, demo_pace=DEMO_PACE, fsync="never")
    with serve_gateway(config) as gw:
        _demo_run_in_three_tabs(gw, context)


def _demo_run_in_three_tabs(demo_gateway: RunningGateway, context: BrowserContext) -> None:
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    lister = context.new_page()
    errors = watch_errors(lister)
    lister.goto(f"{demo_gateway.url}/ui/")
    lister.wait_for_function("() => document.querySelector('#feed-status').textContent === 'live'")
    runner = context.new_page()
    errors += watch_errors(runner)
    runner.goto(f"{demo_gateway.url}/ui/")
    start_demo_run(runner, "demo-1", "What is the weather in Paris?")
    partial = wait_mid_run_text(runner)
    # The list, opened before the thread existed, got it from the changes feed, running, on top.
    lister.wait_for_selector("tr[data-thread-id='demo-1'] .badge.open")
    assert lister.evaluate("() => document.querySelector('tr[data-thread-id]').dataset.threadId") == "demo-1"
    screenshot(lister, "thread-list.png")

    # A second tab opened mid-run follows the same run live.
    watcher = context.new_page()
    errors += watch_errors(watcher)
    watcher.goto(f"{demo_gateway.url}/ui/#/threads/demo-1")
    watched = wait_mid_run_text(watcher)

    wait_finished(runner)
    wait_finished(watcher)
    final = runner.evaluate(ASSISTANT_TEXT_JS)
    for seen in (partial, watched):  # both tabs saw it stream in
        assert len(seen) < len(final) and final.startswith(seen)
    assert_shows_snapshot(runner, demo_gateway, "demo-1")
    assert_shows_snapshot(watcher, demo_gateway, "demo-1")
    assert runner.locator(".tool-call .result:not(.pending)").count() == 2  # results beside their calls
    events = snapshot(demo_gateway, "demo-1")["seq"]
    lister.wait_for_function(
        "(n) => { const row = document.querySelector(\"tr[data-thread-id='demo-1']\");"
        " return row && !row.querySelector('.badge') && row.children[1].textContent === String(n); }",
        arg=events,
    )
    runner.locator("#state-tree summary").first.wait_for()
    runner.click(".message.reasoning summary")  # open the reasoning and a state branch for the picture
    runner.click("#state-tree details details > summary")
    runner.wait_for_selector("#state-tree details details[open]")
    screenshot(runner, "thread-view.png")
    for page in (lister, runner, watcher):
        page.close()  # before the gateway stops: its streams end with the pages
    assert errors == []
    # Everything came from the gateway itself: no CDN, nothing from elsewhere (works offline).
    assert requested and all(url.startswith(f"{demo_gateway.url}/") for url in requested)


def test_reloading_mid_run_continues_the_same_conversation_without_duplicates(
    demo_gateway: RunningGateway, context: BrowserContext
) -> None:
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{demo_gateway.url}/ui/")
    start_demo_run(page, "reload-1", "Plan a trip to Tokyo")
    wait_mid_run_text(page)
    assert snapshot(demo_gateway, "reload-1")["running"] is True
    page.reload()
    # After the reload: the fresh replay of the open run, then the live tail.
    page.wait_for_function(f"() => ({BADGE_IS})('open') && ({ASSISTANT_TEXT_JS})().length > 0")
    wait_finished(page)
    assert_shows_snapshot(page, demo_gateway, "reload-1")
    assert errors == []


def test_offline_and_back_online_mid_run_loses_and_doubles_nothing(
    demo_gateway: RunningGateway, context: BrowserContext
) -> None:
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{demo_gateway.url}/ui/")
    start_demo_run(page, "offline-1", "What is the weather in Paris?")
    wait_mid_run_text(page)
    seq_before = snapshot(demo_gateway, "offline-1")["seq"]
    context.set_offline(True)
    page.wait_for_function("() => document.querySelector('#stream-status').textContent === 'offline'")
    applied_offline = page.evaluate("() => window.aguiUi.view.stats.events")

    # The run goes on while the page is offline.
    assert wait_until(lambda: snapshot(demo_gateway, "offline-1")["seq"] >= seq_before + 10, timeout=15)
    assert page.evaluate("() => window.aguiUi.view.stats.events") == applied_offline  # really cut off
    context.set_offline(False)
    wait_finished(page)
    stats = page.evaluate("() => window.aguiUi.view.stats")
    assert stats["connects"] == 2  # one resume, with Last-Event-ID
    assert_shows_snapshot(page, demo_gateway, "offline-1")
    assert errors == []


def test_stop_shows_a_stopped_run_and_both_logs_download(
    demo_gateway: RunningGateway, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    errors = watch_errors(page)
    page.goto(f"{demo_gateway.url}/ui/")
    start_demo_run(page, "stop-1", "What is the weather in Paris?")
    wait_mid_run_text(page)
    open_run = page.evaluate("() => window.aguiUi.view.run.runId")
    assert open_run
    with page.expect_request(lambda request: "/stop" in request.url) as stop:
        page.click("#stop-run")
    # The stop names the run the page shows open (a run that ended meanwhile is not stopped by mistake).
    assert parse_qs(urlsplit(stop.value.url).query) == {"runId": [open_run]}
    # AG-UI 1.0's cancelled outcome: "stopped", neither an error nor an interrupt.
    page.wait_for_function(f"() => ({BADGE_IS})('stopped')")
    banner = page.locator(".run-error").text_content() or ""
    assert banner.startswith("run stopped") and "error" not in banner and "interrupted" not in banner
    assert page.locator(".run-error.stopped").count() == 1
    assert snapshot(demo_gateway, "stop-1")["running"] is False
    assert_shows_snapshot(page, demo_gateway, "stop-1")
    downloads = {}
    for button in ("#download-raw", "#download-compact"):
        with page.expect_download() as info:
            page.click(button)
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        downloads[button] = (info.value.suggested_filename, path.read_bytes())
    raw = httpx.get(f"{demo_gateway.url}/threads/stop-1/log.jsonl").content
    compact = httpx.get(f"{demo_gateway.url}/threads/stop-1/log.jsonl", params={"compact": "1"}).content
    assert downloads["#download-raw"] == ("stop-1.jsonl", raw)
    assert downloads["#download-compact"] == ("stop-1.compact.jsonl", compact)
    assert len(compact) < len(raw)
    assert errors == []


def test_the_list_filters_by_prefix_and_pages(tmp_path: Path, context: BrowserContext) -> None:
    data_dir = tmp_path / "data"

    async def fill() -> None:
        store = FileStore(data_dir, fsync="never")
        await store.open()
        for i in range(30):
            thread = f"{'alpha' if i % 3 else 'beta'}-{i:02d}"
            run = f"run-{i}"
            await store.append(
                thread,
                [
                    NewEvent({"type": "RUN_STARTED", "threadId": thread, "runId": run}, run),
                    NewEvent({"type": "RUN_FINISHED", "threadId": thread, "runId": run}, run),
                ],
            )
            await next_millisecond()  # distinct record timestamps: the order under test
        await store.close()

    run_async(fill())
    with serve_gateway(GatewayConfig(data_dir=data_dir)) as gw:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{gw.url}/ui/")
        rows = "() => [...document.querySelectorAll('tr[data-thread-id]')].map(r => r.dataset.threadId)"
        page.wait_for_function(f"() => ({rows})().length === 25")
        newest_first = [f"{'alpha' if i % 3 else 'beta'}-{i:02d}" for i in range(29, -1, -1)]
        assert page.evaluate(rows) == newest_first[:25]
        page.click("#page-next")
        page.wait_for_function(f"() => ({rows})().length === 5")
        assert page.evaluate(rows) == newest_first[25:]
        page.click("#page-prev")
        page.wait_for_function(f"() => ({rows})().length === 25")
        page.fill("#filter", "beta")
        page.wait_for_function(f"() => ({rows})().length === 10")
        assert all(t.startswith("beta") for t in page.evaluate(rows))
        assert page.is_disabled("#page-next")
        page.close()
        assert errors == []


def test_activity_messages_and_run_errors_are_shown(tmp_path: Path, context: BrowserContext) -> None:
    data_dir = tmp_path / "data"
    thread, run = "act-1", "r1"
    events = [
        {"type": "RUN_STARTED", "threadId": thread, "runId": run},
        {
            "type": "ACTIVITY_SNAPSHOT",
            "messageId": "a1",
            "activityType": "plan",
            "content": {"steps": [{"title": "search", "done": True}, {"title": "answer", "done": False}]},
        },
        {"type": "TEXT_MESSAGE_START", "messageId": "m1", "role": "assistant"},
        {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": "Working on it"},
        {"type": "TEXT_MESSAGE_END", "messageId": "m1"},
        {"type": "RUN_ERROR", "message": "the model provider returned 503", "code": "upstream_error"},
    ]

    async def fill() -> None:
        store = FileStore(data_dir, fsync="never")
        await store.open()
        await store.append(thread, [NewEvent(e, run) for e in events])
        await store.close()

    run_async(fill())
    with serve_gateway(GatewayConfig(data_dir=data_dir)) as gw:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{gw.url}/ui/#/threads/{thread}")
        page.wait_for_function(f"() => ({BADGE_IS})('error')")
        page.wait_for_selector(".message.activity .tree")
        assert "plan" in (page.text_content(".message.activity .role") or "")
        page.click(".message.activity summary >> text=steps")
        page.click(".message.activity details details[open] > details > summary >> nth=0")  # steps/0
        page.wait_for_selector(".message.activity details details details[open]")
        assert '"search"' in (page.text_content(".message.activity .tree") or "")
        assert page.text_content(".run-error") == "run error (upstream_error): the model provider returned 503"
        assert page.locator("#state-tree summary").count() == 1  # the empty state, shown as such
        assert page.is_disabled("#composer button[type=submit]")  # no agent to run against
        assert_shows_snapshot(page, gw, thread)
        page.close()
        assert errors == []


class CuttingProxy:
    """A TCP proxy in front of the gateway that stalls the first thread-events response
    right after the SSE frame holding ``marker`` (the browser gets every frame up to
    there, in whole HTTP chunks) and, on :meth:`cut`, closes it mid-body, as when a
    network drops mid-response."""

    def __init__(self, upstream_port: int, marker: bytes) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._cut: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cutting-proxy")

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        assert self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._cut = asyncio.Event()
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._started.set()
        self._loop.run_forever()

    def cut(self) -> None:
        assert self._cut is not None
        self._loop.call_soon_threadsafe(self._cut.set)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        events_request = asyncio.Event()

        async def to_gateway() -> None:
            while data := await reader.read(65536):
                first_line = data.split(b"\r\n", 1)[0]
                if first_line.startswith(b"GET /threads/") and b"/events" in first_line:
                    events_request.set()
                up_writer.write(data)
                await up_writer.drain()

        async def to_browser() -> None:
            held = b""
            while data := await up_reader.read(65536):
                if not (events_request.is_set() and self.cuts == 0):
                    writer.write(data)
                    await writer.drain()
                    continue
                held += data  # the events response, held back until the cut point is known
                head, _, chunked = held.partition(b"\r\n\r\n")
                body = _dechunk(chunked)
                at = body.find(self.marker)
                end = body.find(b"\n\n", at) if at >= 0 else -1
                if end >= 0:
                    self.cuts += 1
                    kept = body[: end + 2]
                    writer.write(head + b"\r\n\r\n" + b"%x\r\n" % len(kept) + kept + b"\r\n")
                    await writer.drain()
                    assert self._cut is not None
                    await self._cut.wait()
                    # No last chunk: the response breaks off here (the browser then closes).
                    writer.write_eof()
                    await asyncio.Event().wait()

        tasks = [asyncio.ensure_future(to_gateway()), asyncio.ensure_future(to_browser())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()


def _dechunk(data: bytes) -> bytes:
    """The body bytes of the complete chunks at the start of a chunked HTTP body."""
    body = b""
    while True:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            return body
        size = int(size_line.split(b";")[0], 16)
        if size == 0 or len(rest) < size + 2:
            return body
        body += rest[:size]
        data = rest[size + 2 :]


def test_a_stream_cut_inside_the_compacted_replay_shows_every_event_once(
    tmp_path: Path, context: BrowserContext
) -> None:
    """Frames of a compacted stretch carry no id: cut after some of them, the page must
    drop them and take the stretch again, never apply them twice."""
    data_dir = tmp_path / "data"
    run_async(_store_generated_thread(data_dir, "cut-1", "realistic_small"))
    with (
        serve_gateway(GatewayConfig(data_dir=data_dir, fsync="never")) as gw,
        CuttingProxy(int(gw.url.rsplit(":", 1)[1]), b'"type":"MESSAGES_SNAPSHOT"') as proxy,
    ):
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"http://127.0.0.1:{proxy.port}/ui/#/threads/cut-1")
        # RUN_STARTED, the history window's CUSTOM event (the page opens with the latest
        # turns) and MESSAGES_SNAPSHOT arrived; no id yet covers them: nothing applied.
        page.wait_for_function("() => window.aguiUi.view.stats.frames === 3")
        assert page.evaluate("() => window.aguiUi.view.stats.events") == 0
        proxy.cut()
        page.wait_for_function("() => window.aguiUi.view.run && window.aguiUi.view.run.status !== 'open'")
        stats = page.evaluate("() => window.aguiUi.view.stats")
        assert proxy.cuts == 1
        assert stats["connects"] == 2 and stats["dropped"] == 3  # dropped, then taken again whole
        assert_shows_snapshot(page, gw, "cut-1")
        page.close()
        assert errors == []


BIG_THREAD = "big-36k"


async def _store_generated_thread(data_dir: Path, thread: str, shape: LogShape | str) -> int:
    store = FileStore(data_dir, fsync="never")
    await store.open()
    batch: list[NewEvent] = []
    run_id = None
    for event in iter_log(shape, seed=11):
        if event["type"] == "RUN_STARTED":
            run_id = event.get("runId")
        batch.append(NewEvent(event, run_id))
        if len(batch) == 4000:
            await store.append(thread, batch)
            batch = []
    await store.append(thread, batch)
    last = await store.last_seq(thread)
    await store.close()
    return last


def test_a_finished_36000_event_thread_opens_fast_and_renders_lazily(tmp_path: Path, context: BrowserContext) -> None:
    data_dir = tmp_path / "data"
    stored = run_async(_store_generated_thread(data_dir, BIG_THREAD, realistic_coding_agent(36_000)))
    config = GatewayConfig(data_dir=data_dir, fsync="never")
    with serve_gateway(config) as gw:
        # A thread the gateway finished itself has a checkpoint: the first open writes it.
        httpx.get(f"{gw.url}/threads/{BIG_THREAD}/snapshot", timeout=30).raise_for_status()
    assert (data_dir / "threads" / BIG_THREAD / "checkpoint.bin").exists()
    with serve_gateway(config) as gw:  # a fresh process, as after a restart
        page = context.new_page()
        errors = watch_errors(page)
        cold = open_big_thread(page, f"{gw.url}/ui/#/threads/{BIG_THREAD}")
        screenshot(page, "thread-view-36k.png")
        page.reload()  # the same thread again: the gateway holds its replay in memory now
        warm = open_big_thread(page, None)
        report = (
            f"36k-event thread ({stored} events) opened in {cold['opened']:.0f} ms of page time from a fresh "
            f"gateway process, {warm['opened']:.0f} ms when the gateway has it in memory; fresh replay "
            f"{cold['frames']} frames, {cold['bytes']} bytes; {cold['rendered']} of {cold['held']} messages "
            f"rendered; marks (ms, fresh/in memory): events {cold['events_at']}/{warm['events_at']}, "
            f"client state {cold['state_at']}/{warm['state_at']}, rendered {cold['render_at']}/{warm['render_at']}"
        )
        print("\n" + report)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "ui-36k-timing.txt").write_text(report + "\n")
        expected = snapshot(gw, BIG_THREAD)
        for measured in (cold, warm):
            assert measured["frames"] < 100  # a handful of frames, not 36,000
            assert measured["rendered"] <= 80  # rendered in windows
            assert measured["held"] < len(expected["messages"])  # opened with its latest turns
        page.click("button.more")  # the next window, on demand: older messages from the gateway
        page.wait_for_function(
            "(n) => document.querySelectorAll('#messages [data-message-id]').length > n", arg=warm["rendered"]
        )
        assert page.evaluate("() => window.aguiUi.view.agent.messages.length") > warm["held"]
        # Scrolling up to the start pages in the rest: then the page holds the whole thread.
        page.evaluate(
            "async () => { const v = window.aguiUi.view; while (v.olderCursor !== null) await v.loadOlder(); }"
        )
        assert page.evaluate("() => window.aguiUi.view.agent.messages") == expected["messages"]
        # ?turns=all: the whole history at once (no window, nothing older to page in), in a
        # page loaded anew (the windowed view above held fewer messages when it opened).
        page.goto("about:blank")
        whole = open_big_thread(page, f"{gw.url}/ui/#/threads/{BIG_THREAD}?turns=all")
        assert whole["held"] == len(expected["messages"])
        assert page.evaluate("() => window.aguiUi.view.olderCursor") is None
        assert page.evaluate("() => window.aguiUi.view.agent.messages") == expected["messages"]
        page.close()  # before the gateway stops: its streams end with the page
        assert errors == []


def open_big_thread(page: Page, url: str | None) -> dict[str, Any]:
    """Opens (or, with no url, waits for the reloaded) thread view; page-time figures."""
    if url is not None:
        page.goto(url)
    page.wait_for_function(
        "() => { const v = window.aguiUi.view; return v && v.run && v.run.status !== 'open'"
        " && document.querySelectorAll('#messages [data-message-id]').length > 0; }",
        polling="raf",
    )
    figures: dict[str, Any] = page.evaluate(
        """() => {
            const marks = Object.fromEntries(
                performance.getEntriesByType('mark').map(m => [m.name, Math.round(m.startTime)]));
            const v = window.aguiUi.view;
            return {opened: performance.now(), frames: v.stats.frames, bytes: v.stats.bytes,
                    held: v.agent.messages.length,
                    rendered: document.querySelectorAll('#messages [data-message-id]').length,
                    events_at: marks['agui:events'], state_at: marks['agui:messages'], render_at: marks['agui:render']};
        }"""
    )
    return figures


READER = "reader-token-aaaa"


def test_with_tokens_the_page_asks_for_one_and_shows_only_threads_in_scope(
    tmp_path: Path, context: BrowserContext
) -> None:
    data_dir = tmp_path / "data"

    async def fill() -> None:
        store = FileStore(data_dir, fsync="never")
        await store.open()
        for thread in ("team-a-1", "team-b-1"):
            run = f"run-{thread}"
            await store.append(
                thread,
                [
                    NewEvent({"type": "RUN_STARTED", "threadId": thread, "runId": run}, run),
                    NewEvent({"type": "RUN_FINISHED", "threadId": thread, "runId": run}, run),
                ],
            )
        await store.close()

    run_async(fill())
    tokens = parse_tokens(f"{READER}:read:team-a-")
    with serve_gateway(GatewayConfig(data_dir=data_dir, tokens=tokens)) as gw:
        page = context.new_page()
        errors = watch_errors(page)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        page.goto(f"{gw.url}/ui/")
        page.wait_for_selector("#auth:not([hidden])")
        assert "token" in page.text_content("#auth-reason").lower()
        page.fill("#auth-token", READER)
        page.click("#auth-form button[type=submit]")
        page.wait_for_selector("tr[data-thread-id='team-a-1']")
        page.wait_for_function("() => document.querySelector('#feed-status').textContent === 'live'")
        assert page.locator("tr[data-thread-id]").count() == 1  # team-b-1 is not listed
        page.goto(f"{gw.url}/ui/#/threads/team-b-1")
        page.wait_for_selector("#thread-error:not([hidden])")
        message = page.text_content("#thread-error")
        assert "Access denied" in message and "team-b-1" in message
        assert page.is_hidden("#messages")
        assert page.evaluate("() => sessionStorage.getItem('agui-gateway-token')") == READER
        assert not any(READER in url for url in urls)  # never in a URL
        page.close()
        assert errors == []


RUNS_JS = """() => [...document.querySelectorAll('#run-rows tr')].map(tr => ({
    runId: tr.dataset.runId, cells: [...tr.children].map(td => td.textContent.trim()),
    selected: tr.classList.contains('selected')}))"""


def test_the_runs_timeline_shows_each_run_and_opens_the_thread_as_it_was_after_one(
    tmp_path: Path, context: BrowserContext, official_client: OfficialClient
) -> None:
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=0.3, fsync="never")
    thread = "timeline-1"
    with serve_gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=20) as client:

        def run(run_id: str, messages: list[dict[str, Any]]) -> None:
            body = {"threadId": thread, "runId": run_id, "messages": messages, "tools": [], "context": []}
            with client.stream("POST", "/agents/demo/run", json=body) as response:
                assert response.status_code == 200
                response.read()

        first = {"id": "u1", "role": "user", "content": "What is the weather in Paris?"}
        second = {"id": "u2", "role": "user", "content": "And in Oslo?"}
        run("r1", [first])
        after_r1 = client.get(f"/threads/{thread}/snapshot").json()["messages"]
        run("r2", [*after_r1, second])
        run("r3", [*after_r1, second])  # a regenerate of r2's answer: a branch of r1
        after_r3 = client.get(f"/threads/{thread}/snapshot").json()["messages"]
        third = {"id": "u3", "role": "user", "content": "Plan a trip to Tokyo"}
        body = {"threadId": thread, "runId": "r4", "messages": [*after_r3, third], "tools": [], "context": []}
        with client.stream("POST", "/agents/demo/run", json=body) as response:
            lines = response.iter_lines()
            while "TEXT_MESSAGE_CONTENT" not in next(lines):
                pass  # the agent is answering: stop it there
            assert client.post(f"/threads/{thread}/stop", params={"runId": "r4"}).status_code == 200
            assert any("RUN_FINISHED" in line for line in lines)  # the caller's stream ends with the stop
        runs = client.get(f"/threads/{thread}/runs").json()["runs"]
        listed = client.get("/threads").json()["threads"]
        at_r1 = [
            f.event
            for f in SseReader().feed(client.get(f"/threads/{thread}/events", params={"run": "r1"}).content)
            if f.event is not None
        ]

        # The figures add up to the thread's own: every record in one run, the log's bytes.
        row = next(t for t in listed if t["threadId"] == thread)
        assert sum(r["events"] for r in runs) == row["events"] and sum(r["bytes"] for r in runs) == row["bytes"]
        assert [(r["runId"], r["status"], r["branch"], r["parentRunId"]) for r in runs] == [
            ("r1", "finished", False, None),
            ("r2", "finished", False, "r1"),
            ("r3", "finished", True, "r1"),
            ("r4", "cancelled", False, "r3"),
        ]
        assert all(r["durationMs"] >= 0 and r["firstEventMs"] >= 0 for r in runs)

        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{gw.url}/ui/#/threads/{thread}")
        page.wait_for_function("() => document.querySelectorAll('#run-rows tr').length === 4")
        page.wait_for_function(f"() => ({BADGE_IS})('stopped')")
        shown = page.evaluate(RUNS_JS)
        assert [r["runId"] for r in shown] == ["r1", "r2", "r3", "r4"]
        for row_shown, info in zip(shown, runs, strict=True):
            _run, status, _started, _duration, _first, events, _size, _bar = row_shown["cells"]
            assert status == ("stopped" if info["runId"] == "r4" else "finished")
            assert events == f"{info['events']:,}"
        assert shown[2]["cells"][0] == "r3fork of r1" and shown[1]["cells"][0] == "r2"
        assert_shows_snapshot(page, gw, thread)

        # Choosing r1: the thread as it was right after it, as the official client holds ?run=r1.
        page.click("#run-rows tr[data-run-id='r1'] a")
        page.wait_for_url(f"**/ui/#/threads/{thread}?run=r1")
        page.wait_for_function("() => document.querySelector('#stream-status').textContent === 'ended'")
        assert page.is_visible("#run-view-note") and page.is_hidden("#composer")
        expected = official_client.replay(at_r1)
        assert expected.error is None
        held = page.evaluate("() => window.aguiUi.view.agent.messages")
        assert held == expected.messages and [m["id"] for m in held] != [
            m["id"] for m in snapshot(gw, thread)["messages"]
        ]
        assert page.evaluate(CONVERSATION_JS) == expected_conversation(expected.messages)
        assert [r["selected"] for r in page.evaluate(RUNS_JS)] == [True, False, False, False]
        screenshot(page, "ui-runs.png")
        # And back to the live thread.
        page.click("#run-view-live")
        page.wait_for_url(f"**/ui/#/threads/{thread}")
        page.wait_for_function(f"() => ({BADGE_IS})('stopped')")
        assert_shows_snapshot(page, gw, thread)
        assert errors == []
        page.close()


def test_a_stop_stored_before_the_cancelled_outcome_also_shows_as_stopped(
    tmp_path: Path, context: BrowserContext
) -> None:
    """A log written before issue 20 ends its stopped run with RUN_ERROR 'stopped'."""
    fixtures = REPO_ROOT / "tests" / "fixtures" / "format-v1"
    data = tmp_path / "data"
    (data / "threads" / "legacy-stopped").mkdir(parents=True)
    (data / "threads" / "legacy-stopped" / "log.jsonl").write_bytes((fixtures / "legacy-stopped.jsonl").read_bytes())
    with serve_gateway(GatewayConfig(data_dir=data)) as gw:
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{gw.url}/ui/#/threads/legacy-stopped")
        page.wait_for_function(f"() => ({BADGE_IS})('stopped')")
        assert (page.locator(".run-error.stopped").text_content() or "").startswith("run stopped")
        page.wait_for_function("() => document.querySelector('#run-rows tr .badge')?.textContent === 'stopped'")
        assert_shows_snapshot(page, gw, "legacy-stopped")
        assert errors == []
        page.close()


async def _demo_run_to_end(url: str, thread: str, run_id: str, text: str, *, delete_first: bool = False) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=20) as client:
        if delete_first:
            assert (await client.delete(f"/threads/{thread}")).status_code == 204
        body = run_input(thread, run_id, [user_message(f"{run_id}-u", text)])
        frames = await collect(client, "POST", "/agents/demo/run", json=body)
        assert events_of(frames)[-1]["type"] == "RUN_FINISHED"


def test_a_thread_deleted_and_written_again_under_the_page_opens_afresh(
    tmp_path: Path, context: BrowserContext
) -> None:
    """The page's ids are of the old thread: its reconnect is answered 409 thread_recreated,
    and the page opens the new thread from a fresh replay (nothing of the old one stays)."""
    config = GatewayConfig(data_dir=tmp_path / "data", demo=True, demo_pace=0, fsync="never")
    with serve_gateway(config) as gw:
        run_async(_demo_run_to_end(gw.url, "again-1", "old-run", "What is the weather in Paris?"))
        page = context.new_page()
        errors = watch_errors(page)
        page.goto(f"{gw.url}/ui/#/threads/again-1")
        wait_finished(page)
        assert_shows_snapshot(page, gw, "again-1")
        page.evaluate("() => { window.firstView = window.aguiUi.view; }")
        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#stream-status').textContent === 'offline'")
        run_async(_demo_run_to_end(gw.url, "again-1", "new-run", "Tell me a joke", delete_first=True))
        context.set_offline(False)
        page.wait_for_function(
            f"() => window.aguiUi.view !== window.firstView && window.aguiUi.view.stats.connects === 1 "
            f"&& ({BADGE_IS})('finished')"
        )
        old_id = page.evaluate("() => window.firstView.stream.lastId")
        assert old_id.split(":")[0] != snapshot(gw, "again-1")["epoch"]  # it resumed with an old id
        assert_shows_snapshot(page, gw, "again-1")
        shown = [m["id"] for m in page.evaluate(CONVERSATION_JS)]
        assert "new-run-u" in shown and "old-run-u" not in shown
        assert errors == []
