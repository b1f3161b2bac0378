"""Benchmark of drop-in durability (issue 10), beside today's behaviour in the same run.

1. Upload per turn on a long thread: a finished ~36,000-event thread (about 600 KB of
   messages) is stored; the caller's next turn is POSTed to the real gateway twice,
   on two copies of the thread: resending the whole transcript (``history = "client"``,
   what an ``HttpAgent`` does today) and sending only the new message
   (``history = "gateway"``). Printed: request body bytes of each and their ratio, and
   the bytes the agent received (the same conversation both ways).
2. Resume after a cut with ``GatewayAgent`` (clients/js): runs
   ``node clients/js/bench/resume-latency.mjs`` (the real gateway, a seeded cutting
   proxy) and prints its figures; the official ``HttpAgent`` has no resume at all (a
   cut run is lost to that UI), so there is no baseline time to put beside it.

    python bench/drop_in_bench.py                 # 36,000 events
    python bench/drop_in_bench.py --events 3000   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from compact_bench import ensure_log  # noqa: E402 -- bench/ holds scripts, not a package: importable after the insert
from gateway_bench import THREAD, load_thread  # noqa: E402 -- same

from agui_gateway.server.app import create_app  # noqa: E402 -- after the bench/ insert, like the lines above
from agui_gateway.server.config import AgentOptions, GatewayConfig  # noqa: E402 -- same


class RecordingAgent:
    """A minimal AG-UI agent: records each request body and answers with one short run."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        run = orjson.loads(body)
        events = [
            {"type": "RUN_STARTED", "threadId": run["threadId"], "runId": run["runId"]},
            {"type": "TEXT_MESSAGE_START", "messageId": run["runId"] + "-a", "role": "assistant"},
            {"type": "TEXT_MESSAGE_CONTENT", "messageId": run["runId"] + "-a", "delta": "ok"},
            {"type": "TEXT_MESSAGE_END", "messageId": run["runId"] + "-a"},
            {"type": "RUN_FINISHED", "threadId": run["threadId"], "runId": run["runId"]},
        ]
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        payload = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
        await send({"type": "http.response.body", "body": payload})


async def upload_figures(events: int) -> None:
    log = ensure_log(events)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        await load_thread(data, log)
        # Two copies of the same thread: one per history mode.
        threads = data / "threads"
        shutil.copytree(threads / THREAD, threads / (THREAD + "-gw"))
        agent = RecordingAgent()
        config = GatewayConfig(
            data_dir=data,
            agent_options={"kept": AgentOptions(history="gateway")},
        )
        app = create_app(config, agents={"client": agent, "kept": agent})
        server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning", lifespan="on"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)  # wait-ok: polling uvicorn's start flag, bounded by the task
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            held = (await client.get(f"/threads/{THREAD}/snapshot")).json()["messages"]
            new = {"id": "next-turn", "role": "user", "content": "And now, the tests please."}
            base = {"runId": "bench-next", "state": {}, "tools": [], "context": [], "forwardedProps": {}}
            transcript = orjson.dumps({**base, "threadId": THREAD, "messages": [*held, new]})
            only_new = orjson.dumps({**base, "threadId": THREAD + "-gw", "messages": [new]})
            for agent_name, body in (("client", transcript), ("kept", only_new)):
                response = await client.post(
                    f"/agents/{agent_name}/run", content=body, headers={"content-type": "application/json"}
                )
                assert response.status_code == 200, response.text
                assert b"RUN_FINISHED" in response.content
        server.should_exit = True
        await task
    received = [orjson.loads(b)["messages"] for b in agent.bodies]
    same = received[0] == received[1]
    print(f"thread: {events:,} events, {len(held)} messages held ({len(orjson.dumps(held)):,} B of messages JSON)")
    print(f"  next turn, resending the transcript (today, history=client): {len(transcript):>10,} B uploaded")
    print(f"  next turn, only the new message    (history=gateway):       {len(only_new):>10,} B uploaded")
    print(f"  ratio: {len(transcript) / len(only_new):,.0f}x less upload; the agent got the same messages: {same}")
    print(f"  agent request bodies: {len(agent.bodies[0]):,} B vs {len(agent.bodies[1]):,} B")


def resume_figures() -> None:
    js = ROOT / "clients" / "js"
    node = shutil.which("node")
    if node is None or not (js / "dist").is_dir():
        print("resume latency: skipped (build clients/js first: cd clients/js && npm ci && npm run build)")
        return
    print("GatewayAgent, cut connection -> first resumed event (official HttpAgent: no resume):")
    done = subprocess.run([node, "bench/resume-latency.mjs"], cwd=js, capture_output=True, text=True, check=False)
    print("  " + (done.stdout.strip() or done.stderr.strip()[-2000:]).replace("\n", "\n  "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=36_000)
    parser.add_argument("--no-resume", action="store_true", help="skip the GatewayAgent resume latency")
    args = parser.parse_args()
    asyncio.run(upload_figures(args.events))
    if not args.no_resume:
        resume_figures()


if __name__ == "__main__":
    main()
