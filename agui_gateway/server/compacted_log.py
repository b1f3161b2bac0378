"""``GET /threads/{thread}/log.jsonl?compact=1``: a thread's log in its compacted form."""

from __future__ import annotations

import orjson

from agui_gateway.server.threads import ThreadRuntime


async def compacted_lines(runtime: ThreadRuntime) -> list[bytes]:
    """The thread's log compacted as a fresh replay sends it: bare events, one JSON line each.

    The same form as ``agui-gateway compact`` writes (finished runs folded into one
    synthetic run, the open run delta-compacted), from the runtime's own replay state.
    """
    await runtime.replay_view()  # takes in records another writer stored
    compactor = await runtime.compactor()
    return [orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE) for event in compactor.replay_events()]
