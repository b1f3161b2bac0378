"""The protocol room's constants agree with the pinned official client."""

from __future__ import annotations

import json
import math
import re

from support.official_client import HARNESS_DIR

from agui_gateway.protocol.compaction import MAX_FRAME_BYTES
from agui_gateway.protocol.types import CLIENT_SSE_BUFFER_LIMIT
from agui_gateway.upstream.sse_parser import DEFAULT_MAX_EVENT_BYTES

_CLIENT_MAP = HARNESS_DIR / "node_modules/@ag-ui/client/dist/index.js.map"


def _client_source(name: str) -> str:
    source_map = json.loads(_CLIENT_MAP.read_text(encoding="utf-8"))
    (index,) = [i for i, path in enumerate(source_map["sources"]) if path.endswith(name)]
    return str(source_map["sourcesContent"][index])


def test_sse_buffer_limit_is_the_clients() -> None:
    source = _client_source("transform/sse.ts")
    match = re.search(r"export const MAX_BUFFER_SIZE = ([0-9* ]+);", source)
    assert match is not None, "the client's sse.ts no longer declares MAX_BUFFER_SIZE"
    assert math.prod(int(factor) for factor in match.group(1).split("*")) == CLIENT_SSE_BUFFER_LIMIT
    # Everything that bounds a frame derives from it.
    assert MAX_FRAME_BYTES < CLIENT_SSE_BUFFER_LIMIT
    assert DEFAULT_MAX_EVENT_BYTES == CLIENT_SSE_BUFFER_LIMIT
