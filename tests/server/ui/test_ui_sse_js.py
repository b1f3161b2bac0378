"""The page's SSE reader (static/sse.js) under Node: frames split anywhere, CRLF, comments.

The browser tests drive it end to end; this pins the parser's edge cases, which a
live gateway never produces on purpose (it writes LF, one data line per frame).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from support.servers import REPO_ROOT

SSE_JS = REPO_ROOT / "agui_gateway" / "server" / "ui" / "static" / "sse.js"

# Feeds the UTF-8 of the text to sseFrames in pieces of `size` bytes (which may cut a
# character in two); prints the frames as JSON.
SCRIPT = """
import { sseFrames } from %(module)s;
const bytes_ = new TextEncoder().encode(%(text)s);
const size = %(size)d;
const body = new ReadableStream({
  start(controller) {
    for (let i = 0; i < bytes_.length; i += size) controller.enqueue(bytes_.slice(i, i + size));
    controller.close();
  },
});
const frames = [];
let bytes = 0;
for await (const frame of sseFrames(body, (n) => (bytes += n))) frames.push(frame);
console.log(JSON.stringify({ frames, bytes }));
"""


def frames_of(text: str, size: int) -> dict:
    script = SCRIPT % {"module": json.dumps(SSE_JS.as_uri()), "text": json.dumps(text), "size": size}
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script], check=True, capture_output=True, text=True, timeout=30
    )
    result: dict = json.loads(done.stdout)
    return result


STREAM = 'retry: 1000\n\n: ping\n\ndata: {"a":1}\n\nid: 7\ndata: {"é":"ü"}\n\nevent: ready\ndata: {}\n\n'
EXPECTED = [
    {"id": None, "event": None, "data": '{"a":1}'},
    {"id": "7", "event": None, "data": '{"é":"ü"}'},
    {"id": None, "event": "ready", "data": "{}"},
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_frames_are_the_same_however_the_bytes_are_cut(size: int) -> None:
    result = frames_of(STREAM, size)
    assert result["frames"] == EXPECTED
    assert result["bytes"] == len(STREAM.encode())


def test_crlf_multi_line_data_and_an_unterminated_last_frame() -> None:
    result = frames_of("id: 3\r\ndata: line one\r\ndata: line two\r\n\r\ndata: cut off", 5)
    # The cut-off frame never reached its blank line: it is not a frame.
    assert result["frames"] == [{"id": "3", "event": None, "data": "line one\nline two"}]
