"""The official client reading SSE *bytes*, its frame limit included.

:class:`~support.official_client.OfficialClient` replays parsed events; a frame the
client's SSE parser refuses (over ``MAX_BUFFER_SIZE``, 10 MB) never reaches it. This
driver hands the bytes of a stream, in network-sized chunks, to the client's own
``transformHttpEventStream`` inside an agent, as ``HttpAgent`` does with a response
body, and reports what the agent ends up holding and the error that ended the
stream, if any (``"SSE buffer size exceeded maximum limit of 10 MB"`` for a frame too
big).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from support.official_client import ReplayResult, module_driver

_SCRIPT = r"""
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { AbstractAgent, transformHttpEventStream } from "@ag-ui/client";
import { Observable } from "rxjs";
import { installFastClone } from "./lib/fast-clone.mjs";

// As the replay harness does: the platform's structuredClone copies a 12 MB string
// for every event the client applies after it; this one shares strings.
installFastClone();

// A response body in chunks, one per macrotask, like reads off a socket.
function body(bytes, chunk) {
  return new Observable((subscriber) => {
    subscriber.next({ type: "headers", status: 200, headers: new Headers({ "content-type": "text/event-stream" }) });
    let offset = 0;
    let pending = setImmediate(function step() {
      if (offset >= bytes.length) { subscriber.complete(); return; }
      subscriber.next({ type: "data", data: bytes.subarray(offset, offset + chunk) });
      offset += chunk;
      if (!subscriber.closed) pending = setImmediate(step);
    });
    return () => clearImmediate(pending);
  });
}

class BytesAgent extends AbstractAgent {
  constructor(request) {
    super({ threadId: "sse", initialMessages: request.messages ?? [], initialState: request.state ?? {} });
    this.bytes = readFileSync(request.path);
    this.chunk = request.chunk ?? 65536;
  }
  run() { return transformHttpEventStream(body(this.bytes, this.chunk)); }
  connect() { return transformHttpEventStream(body(this.bytes, this.chunk)); }
}

const warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
console.error = (...args) => warnings.push(args.join(" "));

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  const request = JSON.parse(line);
  warnings.length = 0;
  const agent = new BytesAgent(request);
  let error = null;
  try {
    if (request.mode === "run") await agent.runAgent();
    else await agent.connectAgent();
  } catch (caught) {
    error = caught instanceof Error ? caught.message : String(caught);
  }
  await new Promise((resolve) => setImmediate(resolve));
  process.stdout.write(JSON.stringify({
    messages: agent.messages, state: agent.state, pendingInterrupts: agent.pendingInterrupts ?? [],
    error, warnings: [...warnings],
  }) + "\n");
}
"""


def sse_bytes(events: Iterable[tuple[Mapping[str, Any], int | None]]) -> bytes:
    """Events framed as the gateway frames them: ``id: N`` (when given) and one ``data:`` line."""
    out = bytearray()
    for event, seq in events:
        if seq is not None:
            out += b"id: %d\n" % seq
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return bytes(out)


def frame_sizes(data: bytes) -> list[int]:
    return [len(frame) for frame in data.split(b"\n\n") if frame]


class SseClient:
    """Feeds SSE bytes to the official client (see the module docs)."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    def read(
        self,
        data: bytes,
        *,
        mode: str = "connect",
        messages: Sequence[Mapping[str, Any]] = (),
        state: Any = None,
        chunk: int = 65536,
    ) -> ReplayResult:
        """What an agent holding ``messages`` and ``state`` holds after reading ``data``."""
        with tempfile.NamedTemporaryFile(suffix=".sse") as file:
            Path(file.name).write_bytes(data)
            request = {"path": file.name, "mode": mode, "messages": list(messages), "chunk": chunk}
            if state is not None:
                request["state"] = state
            reply = self._driver.ask(request)
        return ReplayResult.from_wire(reply)


@contextmanager
def sse_client() -> Iterator[SseClient]:
    with module_driver(_SCRIPT, "sse-client") as driver:
        yield SseClient(driver)
